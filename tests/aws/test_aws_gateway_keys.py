"""Keys on AWS: each modelway key is an API Gateway API key (value = the secret) on the
environment's usage plan; rotation replaces it, revocation removes it."""

from __future__ import annotations

from typing import Any

import boto3
import pytest

from functions.core import keys
from functions.core.errors import Unauthenticated

REGION = "us-east-1"


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
    apigw_id = gateway.create_api_key(key_id="key_1", name="ci", secret="mw_key_1_" + "s" * 43)
    assert plan_key_values(usage_plan) == {apigw_id: "mw_key_1_" + "s" * 43}
    described = boto3.client("apigateway", region_name=REGION).get_api_key(apiKey=apigw_id)
    assert described["enabled"] is True
    assert described["name"] == "modelway-test-key_1"


def test_delete_is_idempotent(gateway: Any, usage_plan: str) -> None:
    apigw_id = gateway.create_api_key(key_id="key_1", name="ci", secret="mw_key_1_" + "s" * 43)
    gateway.delete_api_key(apigw_key_id=apigw_id)
    gateway.delete_api_key(apigw_key_id=apigw_id)
    assert plan_key_values(usage_plan) == {}


def test_key_lifecycle_keeps_the_usage_plan_in_step(
    registry: Any, gateway: Any, usage_plan: str
) -> None:
    key, secret = keys.create_key(
        registry=registry, name="team-a", models=["digits"], admin=False, gateway=gateway
    )
    assert key.apigw_key_id is not None
    assert plan_key_values(usage_plan) == {key.apigw_key_id: secret}
    assert registry.get_key(key_id=key.key_id).apigw_key_id == key.apigw_key_id

    rotated, new_secret = keys.rotate_key(registry=registry, key_id=key.key_id, gateway=gateway)
    assert rotated.key_id == key.key_id
    assert rotated.apigw_key_id not in (None, key.apigw_key_id)
    # Only the new secret is metered now, and only the new secret authenticates.
    assert plan_key_values(usage_plan) == {rotated.apigw_key_id: new_secret}
    with pytest.raises(Unauthenticated):
        keys.authenticate(registry=registry, secret=secret)
    assert keys.authenticate(registry=registry, secret=new_secret).key_id == key.key_id

    revoked = keys.revoke_key(registry=registry, key_id=key.key_id, gateway=gateway)
    assert revoked.revoked_at is not None
    assert revoked.apigw_key_id is None
    assert plan_key_values(usage_plan) == {}
    with pytest.raises(Unauthenticated, match="revoked"):
        keys.authenticate(registry=registry, secret=new_secret)


def test_backends_build_a_gateway_only_on_aws_with_a_usage_plan() -> None:
    from functions.core.backends import make_key_gateway
    from functions.core.gateway import ApiGatewayKeys
    from functions.core.settings import Settings

    assert make_key_gateway(Settings(env="local", usage_plan_id="abc")) is None
    assert make_key_gateway(Settings(env="dev")) is None
    assert isinstance(make_key_gateway(Settings(env="dev", usage_plan_id="abc")), ApiGatewayKeys)
