"""The REQUEST authorizer, fed the real-shaped event in events/authorizer-request.json, over
the DynamoDB registry under moto."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from functions.core import keys
from tests.events import sample_event

EVENT_FILE = "authorizer-request.json"
PLACEHOLDER = "${MODELWAY_API_KEY}"


@dataclass
class Context:
    function_name: str = "modelway-authorizer"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:modelway-authorizer"
    aws_request_id: str = "2f6b1a7e-0000-4000-8000-000000000001"


def event_with(secret: str | None, *, header: str = "x-api-key") -> dict[str, Any]:
    event = sample_event(EVENT_FILE)
    for headers in (event["headers"], event["multiValueHeaders"]):
        headers.pop("x-api-key")
    if secret is not None:
        event["headers"][header] = secret
        event["multiValueHeaders"][header] = [secret]
    return event


@pytest.fixture
def authorizer(aws_registry: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The handler module, reading the registry the settings name (as in Lambda)."""
    from functions.authorizer import handler as module
    from functions.core import backends
    from functions.core.settings import get_settings

    monkeypatch.setenv("MODELWAY_ENV", "dev")
    monkeypatch.setenv("MODELWAY_TABLE_NAME", aws_registry.table_name)
    monkeypatch.setenv("MODELWAY_REGION", "us-east-1")
    get_settings.cache_clear()
    backends.use(None)
    yield module
    backends.use(None)
    get_settings.cache_clear()


def test_the_event_file_is_a_rest_request_authorizer_event() -> None:
    event = sample_event(EVENT_FILE)
    assert event["type"] == "REQUEST"
    assert event["methodArn"].startswith("arn:aws:execute-api:")
    assert event["headers"]["x-api-key"] == PLACEHOLDER


def test_a_valid_key_is_allowed_on_every_route_of_the_stage(
    authorizer: Any, aws_registry: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    key, secret = keys.create_key(
        registry=aws_registry, name="team-a", models=["digits", "iris"], admin=False
    )
    answer = authorizer.handler(event_with(secret), Context())
    assert answer["principalId"] == key.key_id
    (statement,) = answer["policyDocument"]["Statement"]
    assert statement == {
        "Action": "execute-api:Invoke",
        "Effect": "Allow",
        "Resource": ["arn:aws:execute-api:us-east-1:123456789012:a1b2c3d4e5/prod/*/*"],
    }
    # API Gateway meters the usage-plan key derived from the stored hash, not the secret.
    assert answer["usageIdentifierKey"] == keys.usage_key_value(key.secret_hash)
    assert secret not in json.dumps(answer)
    assert answer["context"] == {
        "keyId": key.key_id,
        "tenant": "default",
        "models": "digits,iris",
        "admin": "false",
        "name": "team-a",
    }
    assert secret not in capsys.readouterr().out  # logs name the key, never its secret


def test_the_router_reads_back_the_scopes_the_authorizer_sends(
    authorizer: Any, aws_registry: Any
) -> None:
    from functions.api.apigw import authorizer_context

    key, secret = keys.create_key(
        registry=aws_registry, name="ops", models=["*"], admin=True, tenant="t1"
    )
    answer = authorizer.handler(event_with(secret, header="X-Api-Key"), Context())
    assert answer["context"]["models"] == "*"
    seen = authorizer_context({"requestContext": {"authorizer": answer["context"]}})
    assert seen is not None
    assert (seen.key_id, seen.tenant, seen.models, seen.admin) == (key.key_id, "t1", ("*",), True)


@pytest.mark.parametrize("secret", [None, "", "mw_key_000000000000_not-a-real-secret"])
def test_missing_or_unknown_keys_get_401(authorizer: Any, secret: str | None) -> None:
    with pytest.raises(Exception, match=r"^Unauthorized$"):
        authorizer.handler(event_with(secret), Context())


def test_revoked_and_rotated_away_secrets_get_401(authorizer: Any, aws_registry: Any) -> None:
    key, old = keys.create_key(registry=aws_registry, name="ci", models=["digits"], admin=False)
    _, new = keys.rotate_key(registry=aws_registry, key_id=key.key_id)
    with pytest.raises(Exception, match=r"^Unauthorized$"):
        authorizer.handler(event_with(old), Context())
    assert authorizer.handler(event_with(new), Context())["principalId"] == key.key_id
    keys.revoke_key(registry=aws_registry, key_id=key.key_id)
    with pytest.raises(Exception, match=r"^Unauthorized$"):
        authorizer.handler(event_with(new), Context())


def test_a_registry_failure_fails_closed_and_is_not_a_401(
    authorizer: Any, swap_backends: Callable[..., Any]
) -> None:
    class Broken:
        def find_key_by_hash(self, *, secret_hash: str) -> None:
            raise ConnectionError("registry unreachable")

    swap_backends(registry=Broken())
    with pytest.raises(ConnectionError):
        authorizer.handler(event_with("mw_key_x_y"), Context())
