"""Key administration through the router's own API, in process, on its AWS backends under
moto (DynamoDB registry, API Gateway usage plan): what ``POST /v1/keys``, ``.../rotate`` and
``DELETE /v1/keys/{id}`` do to the usage plan, with every AWS call the router makes checked
against the router's role in the synthesized template (``tests/iam_proof``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from fastapi.testclient import TestClient

from functions.core import keys
from tests.aws_testkit import REGION, TABLE


@pytest.fixture
def usage_plan(mocked: None) -> str:
    plan = boto3.client("apigateway", region_name=REGION).create_usage_plan(name="modelway-test")
    return str(plan["id"])


def plan_values(usage_plan: str) -> dict[str, str]:
    """API key id -> value, for every key on the plan."""
    client = boto3.client("apigateway", region_name=REGION)
    items = client.get_usage_plan_keys(usagePlanId=usage_plan)["items"]
    return {
        item["id"]: client.get_api_key(apiKey=item["id"], includeValue=True)["value"]
        for item in items
    }


@pytest.fixture
def router(aws_registry: Any, usage_plan: str) -> Iterator[tuple[TestClient, str]]:
    from functions.api.app import create_app
    from functions.core.backends import Backends
    from functions.core.settings import Settings

    settings = Settings(
        env="test",
        region=REGION,
        table_name=TABLE,
        usage_plan_id=usage_plan,
        sagemaker_deploy=False,
        key_cache_ttl_seconds=0,
    )
    # The first admin key, as `modelway keys create` makes it (same backends).
    _, admin = keys.create_key(
        registry=aws_registry,
        name="ops",
        models=["*"],
        admin=True,
        gateway=Backends.from_settings(settings).key_gateway,
    )
    with TestClient(create_app(settings=settings)) as client:
        client.headers["x-api-key"] = admin
        yield client, admin


def test_create_rotate_revoke_through_the_api_keep_the_usage_plan_in_step(
    router: tuple[TestClient, str], usage_plan: str, aws_registry: Any
) -> None:
    client, _ = router
    before = set(plan_values(usage_plan))
    created = client.post("/v1/keys", json={"name": "team-a", "models": ["digits"]})
    assert created.status_code == 201, created.text
    key_id, secret = created.json()["key_id"], created.json()["secret"]
    stored = aws_registry.get_key(key_id=key_id)
    new_ids = set(plan_values(usage_plan)) - before
    assert new_ids == {stored.apigw_key_id}
    # The gateway key's value is derived from the stored hash: never the secret itself.
    value = plan_values(usage_plan)[stored.apigw_key_id]
    assert value != secret
    assert value == keys.usage_key_value(stored.secret_hash)

    rotated = client.post(f"/v1/keys/{key_id}/rotate")
    assert rotated.status_code == 200, rotated.text
    new_secret = rotated.json()["secret"]
    assert new_secret != secret
    after_rotate = aws_registry.get_key(key_id=key_id)
    assert after_rotate.apigw_key_id != stored.apigw_key_id
    values = plan_values(usage_plan)
    assert stored.apigw_key_id not in values  # the old gateway key is gone
    assert values[after_rotate.apigw_key_id] == keys.usage_key_value(after_rotate.secret_hash)
    assert keys.authenticate(registry=aws_registry, secret=new_secret).key_id == key_id

    revoked = client.delete(f"/v1/keys/{key_id}")
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["active"] is False
    assert after_rotate.apigw_key_id not in plan_values(usage_plan)
    assert set(plan_values(usage_plan)) == before
