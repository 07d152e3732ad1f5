"""What the router reads from an API Gateway REST (v1 payload) proxy event.

Two things: the request path relative to the API (whatever the stage or custom-domain base
path mapping), and the context the REQUEST authorizer put in ``requestContext.authorizer``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mangum.handlers import APIGateway
from mangum.types import Scope

_PATH_PARAM = re.compile(r"\{([^}+]+)\+?\}")


@dataclass(frozen=True)
class AuthorizerContext:
    """The caller as the API Gateway authorizer validated it (values arrive as strings)."""

    key_id: str
    tenant: str
    models: tuple[str, ...]
    admin: bool
    name: str


def authorizer_context(event: Mapping[str, Any] | None) -> AuthorizerContext | None:
    """The authorizer's context, or ``None`` when the event carries none (no authorizer ran)."""
    if not event:
        return None
    context = (event.get("requestContext") or {}).get("authorizer")
    if not isinstance(context, Mapping) or not context.get("keyId"):
        return None
    models = str(context.get("models") or "")
    return AuthorizerContext(
        key_id=str(context["keyId"]),
        tenant=str(context.get("tenant") or "default"),
        models=tuple(m.strip() for m in models.split(",") if m.strip()),
        # API Gateway stringifies context values: a boolean True arrives as "true".
        admin=str(context.get("admin", "false")).lower() == "true",
        name=str(context.get("name") or context["keyId"]),
    )


def request_path(event: Mapping[str, Any]) -> str:
    """The path relative to the API root.

    ``path`` carries a custom domain's base path mapping while ``resource`` +
    ``pathParameters`` are the API's own route, so the path is rebuilt from those; ``path``
    minus a leading ``/{stage}`` (as hand-written events sometimes have it) is the fallback.
    """
    resource = event.get("resource")
    parameters = event.get("pathParameters") or {}
    if isinstance(resource, str) and resource.startswith("/"):
        names = _PATH_PARAM.findall(resource)
        if all(name in parameters for name in names):
            return _PATH_PARAM.sub(lambda m: str(parameters[m.group(1)]), resource)
    path = str(event.get("path") or "/")
    stage = (event.get("requestContext") or {}).get("stage")
    if stage and path.startswith(f"/{stage}/"):
        path = path[len(stage) + 1 :]
    return path


class RestApiGateway(APIGateway):
    """Mangum's REST API handler, with the path taken from the API's route (see above)."""

    @property
    def scope(self) -> Scope:
        scope = super().scope
        scope["path"] = request_path(self.event)
        return scope
