"""SnapStart on the functions API Gateway calls on every request (router, authorizer): each
deploy publishes a version, the ``live`` alias follows it, API Gateway invokes the alias (with
the permission on the alias), and ``cdk.json`` turns SnapStart on or off per environment."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from infra.config import ConfigError, load_environment
from tests.infra.infra_testkit import (
    Synthesized,
    cdk_context,
    environment_config,
    flat,
    function_named,
)

pytestmark = pytest.mark.infra

PUBLISHED = ("api", "authorizer")


def _logical_id(synth: Synthesized, name: str) -> str:
    function = function_named(synth, name)
    return next(k for k, v in synth.resources.items() if v is function)


def _alias_of(synth: Synthesized, function_id: str) -> tuple[str, dict[str, Any]]:
    (found,) = [
        (logical_id, resource["Properties"])
        for logical_id, resource in synth.of_type("AWS::Lambda::Alias").items()
        if resource["Properties"]["FunctionName"] == {"Ref": function_id}
    ]
    return found


@pytest.mark.parametrize("role", PUBLISHED)
def test_snapstart_follows_cdk_json(each_env: Synthesized, role: str) -> None:
    config = environment_config(each_env.name)
    wanted = getattr(config.lambdas, role).snap_start
    props = function_named(each_env, f"modelway-{each_env.name}-{role}")["Properties"]
    if wanted:
        assert props["SnapStart"] == {"ApplyOn": "PublishedVersions"}
    else:
        assert "SnapStart" not in props


def test_the_environments_differ_where_cdk_json_says(synthesized: dict[str, Synthesized]) -> None:
    """dev deploys without SnapStart (faster deploys), staging and prod with it."""
    on = {
        env: "SnapStart" in function_named(s, f"modelway-{env}-api")["Properties"]
        for env, s in synthesized.items()
    }
    assert on == {"dev": False, "staging": True, "prod": True}


@pytest.mark.parametrize("role", PUBLISHED)
def test_a_version_is_published_and_the_live_alias_points_at_it(
    each_env: Synthesized, role: str
) -> None:
    function_id = _logical_id(each_env, f"modelway-{each_env.name}-{role}")
    versions = {
        logical_id
        for logical_id, resource in each_env.of_type("AWS::Lambda::Version").items()
        if resource["Properties"]["FunctionName"] == {"Ref": function_id}
    }
    assert len(versions) == 1
    _, alias = _alias_of(each_env, function_id)
    assert alias["Name"] == "live"
    assert alias["FunctionVersion"] == {"Fn::GetAtt": [versions.pop(), "Version"]}


@pytest.mark.parametrize("role", ["batch", "endpoint-events"])
def test_functions_invoked_by_events_are_not_published(each_env: Synthesized, role: str) -> None:
    function_id = _logical_id(each_env, f"modelway-{each_env.name}-{role}")
    assert (
        "SnapStart"
        not in function_named(each_env, f"modelway-{each_env.name}-{role}")["Properties"]
    )
    for cfn_type in ("AWS::Lambda::Version", "AWS::Lambda::Alias"):
        assert not [
            r
            for r in each_env.of_type(cfn_type).values()
            if r["Properties"]["FunctionName"] == {"Ref": function_id}
        ]


def test_api_gateway_invokes_the_authorizers_alias(each_env: Synthesized) -> None:
    function_id = _logical_id(each_env, f"modelway-{each_env.name}-authorizer")
    alias_id, _ = _alias_of(each_env, function_id)
    authorizer = each_env.one("AWS::ApiGateway::Authorizer")["Properties"]
    assert f"<{alias_id}>" in flat(authorizer["AuthorizerUri"])
    assert flat(authorizer["AuthorizerUri"]).endswith("/invocations")
    permissions = [
        r["Properties"]
        for r in each_env.of_type("AWS::Lambda::Permission").values()
        if r["Properties"]["FunctionName"] == {"Ref": alias_id}
    ]
    assert [p["Principal"] for p in permissions] == ["apigateway.amazonaws.com"]
    assert permissions[0]["Action"] == "lambda:InvokeFunction"
    # Nothing may invoke the unqualified authorizer: that would bypass the snapshot.
    unqualified = ({"Ref": function_id}, {"Fn::GetAtt": [function_id, "Arn"]})
    assert not [
        r
        for r in each_env.of_type("AWS::Lambda::Permission").values()
        if r["Properties"]["FunctionName"] in unqualified
    ]


def test_snap_start_is_a_required_boolean_per_function() -> None:
    environments = copy.deepcopy(cdk_context("dev")["environments"])
    missing = copy.deepcopy(environments)
    del missing["prod"]["lambdas"]["api"]["snap_start"]
    with pytest.raises(ConfigError, match=r"prod\.lambdas\.api: missing setting\(s\) snap_start"):
        load_environment(missing, "prod")
    wrong = copy.deepcopy(environments)
    wrong["prod"]["lambdas"]["authorizer"]["snap_start"] = "yes"
    with pytest.raises(ConfigError, match=r"authorizer\.snap_start must be true or false"):
        load_environment(wrong, "prod")
