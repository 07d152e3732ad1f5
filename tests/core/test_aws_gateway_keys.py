"""Keys on AWS: each modelway key is an API Gateway API key (value derived from the stored
hash) on the environment's usage plan; rotation replaces it, revocation removes it — from the
router's services and from the CLI alike."""

from __future__ import annotations

from typing import Any

import boto3
import pytest

from functions.core import keys
from functions.core.exceptions import Unauthenticated
from tests.aws_testkit import REGION


@pytest.fixture
def usage_plan(mocked: None) -> str:
    plan = boto3.client("apigateway", region_name=REGION).create_usage_plan(
        name="modelway-test", throttle={"rateLimit": 10, "burstLimit": 20}
    )
    return str(plan["id"])


@pytest.fixture
def gateway(usage_plan: str) -> Any:
    from functions.core.gateway import ApiGatewayKeys

    return ApiGatewayKeys(usage_plan_id=usage_plan, region=REGION, name_prefix="modelway-test")


def plan_key_values(usage_plan: str) -> dict[str, str]:
    """API key id -> value, for the keys on the plan."""
    client = boto3.client("apigateway", region_name=REGION)
    items = client.get_usage_plan_keys(usagePlanId=usage_plan)["items"]
    return {
        item["id"]: client.get_api_key(apiKey=item["id"], includeValue=True)["value"]
        for item in items
    }


def test_create_puts_the_secret_on_the_usage_plan(gateway: Any, usage_plan: str) -> None:
    apigw_id = gateway.create_api_key(key_id="key_1", name="ci", value="mwu_" + "s" * 43)
    assert plan_key_values(usage_plan) == {apigw_id: "mwu_" + "s" * 43}
    described = boto3.client("apigateway", region_name=REGION).get_api_key(apiKey=apigw_id)
    assert described["enabled"] is True
    assert described["name"] == "modelway-test-key_1"


def test_delete_is_idempotent(gateway: Any, usage_plan: str) -> None:
    apigw_id = gateway.create_api_key(key_id="key_1", name="ci", value="mwu_" + "s" * 43)
    gateway.delete_api_key(apigw_key_id=apigw_id)
    gateway.delete_api_key(apigw_key_id=apigw_id)
    assert plan_key_values(usage_plan) == {}


def test_key_lifecycle_keeps_the_usage_plan_in_step(
    aws_registry: Any, gateway: Any, usage_plan: str
) -> None:
    key, secret = keys.create_key(
        registry=aws_registry, name="team-a", models=["digits"], admin=False, gateway=gateway
    )
    assert key.apigw_key_id is not None
    assert plan_key_values(usage_plan) == {key.apigw_key_id: keys.usage_key_value(key.secret_hash)}
    assert aws_registry.get_key(key_id=key.key_id).apigw_key_id == key.apigw_key_id

    rotated, new_secret = keys.rotate_key(registry=aws_registry, key_id=key.key_id, gateway=gateway)
    assert rotated.key_id == key.key_id
    assert rotated.apigw_key_id not in (None, key.apigw_key_id)
    # Only the new secret is metered now, and only the new secret authenticates.
    assert plan_key_values(usage_plan) == {
        rotated.apigw_key_id: keys.usage_key_value(rotated.secret_hash)
    }
    with pytest.raises(Unauthenticated):
        keys.authenticate(registry=aws_registry, secret=secret)
    assert keys.authenticate(registry=aws_registry, secret=new_secret).key_id == key.key_id

    revoked = keys.revoke_key(registry=aws_registry, key_id=key.key_id, gateway=gateway)
    assert revoked.revoked_at is not None
    assert revoked.apigw_key_id is None
    assert plan_key_values(usage_plan) == {}
    with pytest.raises(Unauthenticated, match="revoked"):
        keys.authenticate(registry=aws_registry, secret=new_secret)


def test_backends_build_a_gateway_only_on_aws_with_a_usage_plan() -> None:
    from functions.core.backends import make_key_gateway
    from functions.core.gateway import ApiGatewayKeys
    from functions.core.settings import Settings

    assert make_key_gateway(Settings(env="local", usage_plan_id="abc")) is None
    assert make_key_gateway(Settings(env="dev")) is None
    assert isinstance(make_key_gateway(Settings(env="dev", usage_plan_id="abc")), ApiGatewayKeys)


def test_cli_keys_act_on_the_usage_plan_as_the_router_does(
    aws_registry: Any, usage_plan: str, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    """`modelway keys create|rotate|revoke` against an AWS environment: API Gateway requires
    a usage-plan key for every method (key source AUTHORIZER), so a key the CLI makes must
    have one, exactly as one made through the router's API."""
    import json

    from cli import main
    from functions.core.settings import get_settings
    from tests.aws_testkit import TABLE

    for name, value in {
        "MODELWAY_ENV": "test",
        "MODELWAY_REGION": REGION,
        "MODELWAY_TABLE_NAME": TABLE,
        "MODELWAY_USAGE_PLAN_ID": usage_plan,
    }.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    try:
        assert main(["keys", "create", "--name", "ci", "--models", "digits"]) == 0
        created = json.loads(capsys.readouterr().out)
        key = aws_registry.get_key(key_id=created["key_id"])
        assert plan_key_values(usage_plan) == {
            key.apigw_key_id: keys.usage_key_value(key.secret_hash)
        }

        assert main(["keys", "rotate", key.key_id]) == 0
        rotated = aws_registry.get_key(key_id=key.key_id)
        assert json.loads(capsys.readouterr().out)["secret"] != created["secret"]
        assert plan_key_values(usage_plan) == {
            rotated.apigw_key_id: keys.usage_key_value(rotated.secret_hash)
        }

        assert main(["keys", "revoke", key.key_id]) == 0
        assert plan_key_values(usage_plan) == {}
        assert aws_registry.get_key(key_id=key.key_id).apigw_key_id is None
    finally:
        get_settings.cache_clear()


def test_a_revoke_landing_inside_a_rotation_is_not_undone(
    aws_registry: Any, gateway: Any, usage_plan: str
) -> None:
    """The interleaving forced: rotate reads the key (active), a revoke from elsewhere
    commits, then rotate writes. The rotation must fail, the key stay revoked, and neither
    secret authenticate; no gateway key is left on the plan."""
    from functions.core.exceptions import Conflict
    from functions.core.registry.dynamodb import DynamoDBRegistry
    from tests.aws_testkit import TABLE

    key, secret = keys.create_key(
        registry=aws_registry, name="team-a", models=["digits"], admin=False, gateway=gateway
    )
    elsewhere = DynamoDBRegistry(table_name=TABLE, region=REGION)
    revoked_between: list[str] = []

    def revoke_first(**_: Any) -> None:
        if not revoked_between:
            revoked_between.append(key.key_id)
            keys.revoke_key(registry=elsewhere, key_id=key.key_id, gateway=gateway)

    # Just before rotate's write reaches DynamoDB (after its read).
    aws_registry._ddb.meta.events.register("before-call.dynamodb.TransactWriteItems", revoke_first)
    with pytest.raises(Conflict) as refused:
        keys.rotate_key(registry=aws_registry, key_id=key.key_id, gateway=gateway)
    assert revoked_between == [key.key_id]
    assert refused.value.code == "key_revoked"
    stored = aws_registry.get_key(key_id=key.key_id)
    assert not stored.active
    assert stored.secret_hash == key.secret_hash
    with pytest.raises(Unauthenticated, match="revoked"):
        keys.authenticate(registry=aws_registry, secret=secret)
    assert plan_key_values(usage_plan) == {}


def test_revoking_flushes_the_stages_cached_authorizer_answers(aws_env: None) -> None:
    """FlushStageAuthorizersCache (moto has none: botocore's Stubber, which also checks the
    parameters against the service model), made as the router makes it, so the IAM proof
    checks the router's role for it."""
    from botocore.stub import Stubber

    from functions.core.gateway import ApiGatewayKeys
    from tests.iam_proof.capture import acting_as

    client = boto3.client("apigateway", region_name=REGION)
    gateway = ApiGatewayKeys(
        usage_plan_id="plan1",
        region=REGION,
        rest_api_id="a1b2c3d4e5",
        stage_name="dev",
        client=client,
    )
    with Stubber(client) as stub:
        stub.add_response(
            "flush_stage_authorizers_cache", {}, {"restApiId": "a1b2c3d4e5", "stageName": "dev"}
        )
        with acting_as("functions.api.handler.handler"):
            gateway.flush_authorizer_cache()
        stub.assert_no_pending_responses()
    # Without a known stage (a local or hand-made setup) there is nothing to flush.
    ApiGatewayKeys(usage_plan_id="plan1", region=REGION, client=object()).flush_authorizer_cache()
