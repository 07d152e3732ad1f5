"""API Gateway (REST) Lambda REQUEST authorizer; identity source: the ``x-api-key`` header.

API Gateway API keys identify callers for usage plans; AWS says they are not for
authorization. This function is the authorization: it hashes the key, looks it up in the
registry (``functions.core.keys.authenticate``: unknown or revoked keys fail), and answers

- unknown or revoked key: ``raise Exception("Unauthorized")``, the one answer API Gateway
  turns into **401** (an explicit Deny policy would be 403, which says "known but not
  allowed" — wrong for a key that is not valid at all). A request without the header never
  gets here: with an identity source set, API Gateway answers 401 itself.
- valid key: an Allow policy on every method and path of this API stage
  (``arn:…:{api}/{stage}/*``). API Gateway caches the answer per identity source (the key)
  for the authorizer's TTL and applies it to whatever route the same key calls next, so a
  policy naming only this route would wrongly deny the key's next, different route. Per-model
  scopes are therefore enforced by the router from the context below, not by the policy.
- ``usageIdentifierKey`` = ``keys.usage_key_value`` of the key's stored hash: with API key
  source ``AUTHORIZER`` API Gateway meters and throttles the usage-plan API key whose value it
  is (``functions.core.gateway``); the secret itself is in no API Gateway key.
- ``context``: ``keyId``, ``tenant``, ``models`` (comma-joined, or ``*``), ``admin``
  (``"true"``/``"false"``) and ``name`` — the names ``functions.api.apigw`` reads from
  ``requestContext.authorizer``.

Any other failure (registry unreachable) propagates: API Gateway answers 500 and lets
nothing through (fails closed), and does not cache it.

In a Lambda sandbox the registry client is built and primed at import, the init phase (under
SnapStart, before the snapshot; ``functions.core.snapstart``). Nothing here caches a key or
draws random numbers, so a restore has nothing to renew.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.data_classes.api_gateway_authorizer_event import (
    APIGatewayAuthorizerRequestEvent,
    APIGatewayAuthorizerResponse,
    parse_api_gateway_arn,
)

from functions.core import snapstart
from functions.core.exceptions import Unauthenticated
from functions.core.keys import authenticate, usage_key_value

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from functions.core.registry.base import ApiKey, KeyStore

API_KEY_HEADER = "x-api-key"

logger = Logger(service="modelway-authorizer")


def get_registry() -> KeyStore:
    """The keys of the process's backends (``functions.core.backends.current``: the one wiring
    point; tests swap them with ``backends.use``), built once and kept for the sandbox's life."""
    from functions.core.backends import current

    return current().registry


# clear_state: the key id and tenant appended below belong to one invocation's log lines.
@logger.inject_lambda_context(correlation_id_path="requestContext.requestId", clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = APIGatewayAuthorizerRequestEvent(event)
    secret = request.headers.get(API_KEY_HEADER) or ""  # case-insensitive in Powertools v3
    try:
        key = authenticate(registry=get_registry(), secret=secret or None)
    except Unauthenticated as exc:
        # Never log the secret; the key id (when the key is known) is enough to follow up.
        logger.info("denied", extra={"reason": exc.code, "path": request.path})
        raise Exception("Unauthorized") from None  # API Gateway's literal for a 401
    logger.append_keys(key_id=key.key_id, tenant=key.tenant)
    logger.info("allowed", extra={"path": request.path})
    return allow(key=key, method_arn=request.method_arn)


def allow(*, key: ApiKey, method_arn: str) -> dict[str, Any]:
    """The Allow answer for ``key``: every route of the method's API stage (see above)."""
    arn = parse_api_gateway_arn(method_arn)
    response = APIGatewayAuthorizerResponse(
        principal_id=key.key_id,
        region=arn.region,
        aws_account_id=arn.aws_account_id,
        api_id=arn.api_id,
        stage=arn.stage,
        context={
            "keyId": key.key_id,
            "tenant": key.tenant,
            "models": "*" if "*" in key.models else ",".join(key.models),
            "admin": "true" if key.admin else "false",
            "name": key.name,
        },
        usage_identifier_key=usage_key_value(key.secret_hash),
        partition=arn.partition,
    )
    response.allow_all_routes()
    answer: dict[str, Any] = response.asdict()
    return answer


if snapstart.in_lambda():
    from functions.core.backends import current

    current().prepare("registry")  # the init phase: see the module's docstring
    snapstart.settle()
