"""Environments from cdk.json: parsed strictly, and a wrong choice fails with a clear message."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from typing import Any

import pytest

from infra.config import ConfigError, EnvironmentConfig, load_environment
from tests.infra.infra_testkit import ENVIRONMENTS, REPO_ROOT, cdk_context

pytestmark = pytest.mark.infra


def environments() -> dict[str, Any]:
    return copy.deepcopy(cdk_context(None)["environments"])


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_every_environment_in_cdk_json_parses(env: str) -> None:
    config = load_environment(environments(), env)
    assert isinstance(config, EnvironmentConfig)
    assert config.name == env
    assert config.endpoint_prefix == f"modelway-{env}"
    assert config.sagemaker.instance_type.startswith("ml.g")  # a GPU instance
    assert config.api.default_tier in config.api.usage_plans


def test_prod_is_retained_and_protected_and_dev_is_not() -> None:
    prod = load_environment(environments(), "prod")
    dev = load_environment(environments(), "dev")
    assert prod.retain
    assert prod.termination_protection
    assert not dev.retain
    assert not dev.termination_protection
    assert prod.require_approval
    assert not dev.require_approval
    assert prod.sagemaker.max_instance_count > dev.sagemaker.max_instance_count


def test_tiers_exist_in_every_environment() -> None:
    for env in ENVIRONMENTS:
        plans = load_environment(environments(), env).api.usage_plans
        assert {"free", "standard", "premium"} <= set(plans)


def test_unknown_environment_names_the_known_ones() -> None:
    with pytest.raises(ConfigError, match=r"unknown environment 'nope'.*dev, prod, staging"):
        load_environment(environments(), "nope")


def test_missing_environment_says_how_to_choose() -> None:
    with pytest.raises(ConfigError, match=r"-c env=NAME"):
        load_environment(environments(), None)


def test_missing_environments_block() -> None:
    with pytest.raises(ConfigError, match='no "environments"'):
        load_environment(None, "dev")


def test_unknown_setting_is_a_typo_not_a_default() -> None:
    envs = environments()
    envs["dev"]["sagemaker"]["instance_typ"] = "ml.g5.xlarge"
    with pytest.raises(ConfigError, match=r"environments\.dev\.sagemaker: unknown.*instance_typ"):
        load_environment(envs, "dev")


def test_missing_setting_is_named() -> None:
    envs = environments()
    del envs["staging"]["batch"]["timeout_seconds"]
    with pytest.raises(ConfigError, match=r"staging\.batch: missing setting\(s\) timeout_seconds"):
        load_environment(envs, "staging")


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("log_retention_days",), 13, "not a CloudWatch retention period"),
        (("removal_policy",), "keep", "must be one of 'destroy', 'retain'"),
        (("sagemaker", "min_instance_count"), 5, "min_instance_count <= max_instance_count"),
        (("sagemaker", "hosting"), "serverless", "must be one of 'variants', 'components'"),
        (("sagemaker", "components", "min_copies"), 0, "1 <= min_copies <= max_copies"),
        (("sagemaker", "components", "memory_mb"), 64, "memory_mb >= 128"),
        (("batch", "timeout_seconds"), 901, "Lambda's limit"),
        (("lambdas", "api", "timeout_seconds"), 60, "integration timeout"),
        (("api", "default_tier"), "gold", "not one of api.usage_plans"),
        (("api", "usage_plans", "free", "quota_period"), "YEAR", "must be one of"),
        (("api", "stage_throttle", "burst_limit"), "100", "must be an integer"),
        (("termination_protection",), "yes", "true or false"),
        # SageMaker refuses a canary over 50% of the fleet (dev routes ALL_AT_ONCE; the
        # percentage is checked whatever the routing, so a later switch cannot surprise).
        (("sagemaker", "deploy_canary_percent"), 60, r"must be 1\.\.50"),
    ],
)
def test_invalid_values_are_rejected(path: tuple[str, ...], value: Any, message: str) -> None:
    envs = environments()
    target = envs["dev"]
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(ConfigError, match=message):
        load_environment(envs, "dev")


def test_variants_hosting_keeps_at_least_one_instance_per_variant() -> None:
    """A fleet of inference components may scale to zero instances; a production variant
    may not (SageMaker's minimum is one)."""
    envs = environments()
    assert envs["dev"]["sagemaker"]["min_instance_count"] == 0
    assert load_environment(envs, "dev").sagemaker.hosting == "components"
    envs["dev"]["sagemaker"]["hosting"] = "variants"
    with pytest.raises(ConfigError, match="1 <= min_instance_count <= initial_instance_count"):
        load_environment(envs, "dev")


def test_linear_steps_are_ten_to_fifty_percent() -> None:
    envs = environments()
    envs["dev"]["sagemaker"].update(deploy_traffic_routing="LINEAR", deploy_canary_percent=5)
    with pytest.raises(ConfigError, match=r"must be 10\.\.50 with LINEAR"):
        load_environment(envs, "dev")


def test_an_environment_name_with_a_dash_is_refused() -> None:
    """``modelway-prod-*`` (IAM, EventBridge, SageMaker names) would also match an
    environment ``prod-eu``'s resources."""
    envs = environments()
    envs["prod-eu"] = envs["prod"]
    with pytest.raises(ConfigError, match=r"environment name 'prod-eu' must match"):
        load_environment(envs, "prod-eu")


def _run_app(env: str | None) -> subprocess.CompletedProcess[str]:
    """``python -m infra.app`` the way the CDK CLI starts it (context in CDK_CONTEXT_JSON)."""
    context = cdk_context(env)
    environ = {**os.environ, "CDK_CONTEXT_JSON": json.dumps(context)}
    return subprocess.run(
        [sys.executable, "-m", "infra.app"],
        cwd=REPO_ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_app_entry_point_fails_clearly_on_an_unknown_environment() -> None:
    result = _run_app("nope")
    assert result.returncode == 2
    assert "modelway: unknown environment 'nope': cdk.json defines dev, prod, staging" in (
        result.stderr
    )
    assert "Traceback" not in result.stderr


def test_app_entry_point_fails_clearly_without_an_environment() -> None:
    result = _run_app(None)
    assert result.returncode == 2
    assert "choose an environment with -c env=NAME" in result.stderr


def test_cdk_json_runs_the_app_as_a_module_of_the_project_venv() -> None:
    cdk_json = json.loads((REPO_ROOT / "cdk.json").read_text())
    # -m keeps infra/ off sys.path, so infra/constructs cannot shadow the constructs library.
    assert cdk_json["app"] == ".venv/bin/python -m infra.app"
    assert set(cdk_json["context"]["environments"]) == set(ENVIRONMENTS)


def test_cdk_cli_is_pinned_to_a_current_2x_release() -> None:
    package = json.loads((REPO_ROOT / "infra" / "package.json").read_text())
    version = package["devDependencies"]["aws-cdk"]
    major, minor, *_ = (int(part) for part in version.split("."))
    assert version[0].isdigit(), "pinned exactly, no range"
    assert major == 2
    assert minor >= 1148
    lock = json.loads((REPO_ROOT / "infra" / "package-lock.json").read_text())
    assert lock["packages"]["node_modules/aws-cdk"]["version"] == version
