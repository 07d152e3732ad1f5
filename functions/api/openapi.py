"""The OpenAPI document is the API's contract: every status a route can answer, with its
``{"error", "code"}`` body, is listed on the route (``error_responses``), and the document
also decides the ``Allow`` header of a 405 (``allowed_methods``).

FastAPI documents a 422 ``HTTPValidationError`` (``{"detail": [...]}``) on every route with
parameters; this router never sends that body (``functions.api.errors`` maps validation
errors to 400 or 422 with the standard body), so ``openapi_document`` drops it.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

if TYPE_CHECKING:
    from fastapi import FastAPI


class ErrorBody(BaseModel):
    """Every error: a message for people and a machine-readable code."""

    error: str
    code: str


_DESCRIPTIONS = {
    400: "Not a valid request: a body that is not JSON or not a request, a bad path or query "
    "parameter (a version number that can never exist, say).",
    401: "No API key, an unknown key, or a revoked one (`unauthenticated`, `key_revoked`).",
    403: "The key may not call this model, or this route needs an admin key whose scope "
    "covers the model, tenant or key concerned (`forbidden`).",
    404: "No such model, version, alias, key or job (or a retired version, or a key outside "
    "what the calling admin administers).",
    409: "A conflict with the current state: a version an alias points at, a revoked key, "
    "an endpoint mid-update, nothing to roll back.",
    413: "The body is over the payload limit (6 MB).",
    422: "A well-formed request whose content is refused: tensors that do not fit the "
    "model's signature, body fields that break the schema, an invalid alias or artifact.",
    429: "Throttled or over quota (API Gateway usage plans).",
    500: "An unexpected failure (a bug): `internal_error`, no details.",
    502: "The model failed on this request.",
    503: "The model (or the registry) is unavailable for now; retry after `Retry-After`.",
    504: "The model did not answer in time.",
}
_RETRY_AFTER = {
    "Retry-After": {"description": "Seconds to wait before retrying.", "schema": {"type": "string"}}
}
# Every route is behind API Gateway's throttling and can fail unexpectedly; every keyed
# route checks the key.
PUBLIC = (429, 500)
KEYED = (400, 401, 403, *PUBLIC)


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route or router: the given error statuses with the error body."""
    responses: dict[int | str, dict[str, Any]] = {}
    for status in sorted(set(statuses)):
        entry: dict[str, Any] = {"model": ErrorBody, "description": _DESCRIPTIONS[status]}
        if status in (429, 503):
            entry["headers"] = _RETRY_AFTER
        responses[status] = entry
    return responses


def openapi_document(app: FastAPI) -> dict[str, Any]:
    """``app.openapi``: FastAPI's document, less the validation error body never sent."""
    if app.openapi_schema is not None:
        return app.openapi_schema
    from fastapi.openapi.utils import get_openapi

    document = get_openapi(
        title=app.title,
        version=app.version,
        openapi_version=app.openapi_version,
        summary=app.summary,
        description=app.description,
        routes=app.routes,
    )
    unused = "#/components/schemas/HTTPValidationError"
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            responses = operation.get("responses", {})
            for status, response in list(responses.items()):
                schema = response.get("content", {}).get("application/json", {}).get("schema")
                if schema == {"$ref": unused}:
                    del responses[status]
    schemas = document.get("components", {}).get("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    # FastAPI's document model holds bounds as floats: 2**63-1 would read 2**63. The bodies'
    # own schemas keep them exact.
    from functions.api.schemas import BODIES

    for body in BODIES:
        schema = body.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[body.__name__] = schema
    app.openapi_schema = document
    return document


@lru_cache(maxsize=256)
def path_regex(template: str) -> re.Pattern[str]:
    """``/v1/keys/{key_id}`` as a regex over request paths (one segment per parameter)."""
    parts = re.split(r"(\{[^}]+\})", template)
    return re.compile("".join("[^/]+" if p.startswith("{") else re.escape(p) for p in parts))


def allowed_methods(app: FastAPI, path: str) -> list[str] | None:
    """The methods the document gives the path (None for a path it does not describe)."""
    methods: set[str] = set()
    for template, operations in app.openapi().get("paths", {}).items():
        if path_regex(template).fullmatch(path):
            methods.update(method.upper() for method in operations)
    return sorted(methods) or None
