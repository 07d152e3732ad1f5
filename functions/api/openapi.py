"""The OpenAPI document is the API's contract: every status a route can answer, with its
``{"error", "code"}`` body, is listed on the route (``error_responses``), and the document
also decides the ``Allow`` header of a 405 (``allowed_methods``).

FastAPI documents a 422 ``HTTPValidationError`` (``{"detail": [...]}``) on every route with
parameters; this router never sends that body (``functions.api.http_errors`` maps validation
errors to 400 or 422 with the standard body), so ``openapi_document`` drops it.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

if TYPE_CHECKING:
    from fastapi import FastAPI

OPENAPI_PATH = "/openapi.json"
API_KEY_SCHEME = "apiKey"


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
# One example body per status (several where the codes differ in kind), shown by /docs. The
# API tests send the requests behind the 400/401/404/422 ones and compare the answers.
ERROR_EXAMPLES: dict[int, dict[str, dict[str, str]]] = {
    400: {
        "invalid_request": {
            "error": "the request body is not valid JSON: "
            "Expecting value: line 1 column 1 (char 0)",
            "code": "invalid_request",
        }
    },
    401: {
        "unauthenticated": {"error": "missing x-api-key header", "code": "unauthenticated"},
        "key_revoked": {"error": "key key_ada1b02ed1bf is revoked", "code": "key_revoked"},
    },
    403: {
        "forbidden": {
            "error": "API key key_ada1b02ed1bf may not call model 'iris'",
            "code": "forbidden",
        }
    },
    404: {
        "model_not_found": {"error": "unknown model 'iris'", "code": "model_not_found"},
        "version_not_found": {
            "error": "model 'digits' has no version 9",
            "code": "version_not_found",
        },
    },
    409: {
        "version_in_use": {
            "error": "digits version 1 is in use by alias(es) default; move them first",
            "code": "version_in_use",
        },
        "not_approved": {
            "error": "this environment moves aliases of digits only to approved versions: "
            "version 2 is pending. An admin other than the publisher must run 'modelway "
            "approve digits VERSION' (or POST /v1/models/digits/versions/VERSION/approve) first",
            "code": "not_approved",
        },
        "self_approval": {
            "error": "ops (k1) published digits version 2 and cannot also approve it; "
            "another admin must approve it",
            "code": "self_approval",
        },
    },
    413: {
        "payload_too_large": {
            "error": "the body is over the 6000000-byte limit",
            "code": "payload_too_large",
        }
    },
    422: {
        "invalid_tensor": {
            "error": "input 'input': shape [1, 64] has rank 2, the model expects rank 4 "
            "[-1, 1, 8, 8]",
            "code": "invalid_tensor",
        }
    },
    429: {"throttled": {"error": "Too Many Requests", "code": "throttled"}},
    500: {"internal_error": {"error": "internal error", "code": "internal_error"}},
    502: {
        "model_error": {
            "error": "model endpoint modelway-digits/v1 failed: the model raised an error",
            "code": "model_error",
        }
    },
    503: {
        "model_unavailable": {
            "error": "model endpoint modelway-local-digits/v1 is unreachable",
            "code": "model_unavailable",
        }
    },
    504: {
        "model_timeout": {
            "error": "model endpoint modelway-local-digits/v1 did not answer in time",
            "code": "model_timeout",
        }
    },
}
# The digits demo (`modelway up`): a held-out handwritten 7, 8x8 pixels, and the answer.
DIGITS_SEVEN = [0, 0, 4, 15, 16, 13, 13, 10, 0, 0, 12, 13, 10, 15, 14, 2, 0, 2, 16, 6, 2, 14, 6, 0]
DIGITS_SEVEN += [0, 1, 5, 0, 9, 11, 0, 0, 0, 0, 7, 12, 16, 14, 6, 0, 0, 0, 8, 15, 15, 11, 2, 0]
DIGITS_SEVEN += [0, 0, 2, 16, 8, 0, 0, 0, 0, 0, 7, 15, 4, 0, 0, 0]
INFER_REQUEST_EXAMPLE: dict[str, Any] = {
    "inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 1, 8, 8], "data": DIGITS_SEVEN}]
}
INFER_RESPONSE_EXAMPLE: dict[str, Any] = {
    "model_name": "digits",
    "model_version": "1",
    "outputs": [
        {
            "name": "logits",
            "datatype": "FP32",
            "shape": [1, 10],
            "data": [-3.49, -10.76, -3.78, -0.45, -1.15, -0.007, -11.44, 12.52, 3.21, -5.11],
        },
        {"name": "label", "datatype": "INT64", "shape": [1], "data": [7]},
    ],
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
        entry: dict[str, Any] = {
            "model": ErrorBody,
            "description": _DESCRIPTIONS[status],
            "content": {
                "application/json": {
                    "examples": {
                        name: {"value": body} for name, body in ERROR_EXAMPLES[status].items()
                    }
                }
            },
        }
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
    _add_security(document)
    # Relative to where the document is served: behind API Gateway that is the stage
    # (/dev/openapi.json -> /dev), so /docs' "Try it out" calls the API it was loaded from.
    document["servers"] = [{"url": ".", "description": "this API"}]
    app.openapi_schema = document
    return document


def _add_security(document: dict[str, Any]) -> None:
    """The ``x-api-key`` scheme, on every route that answers 401 (the ones that read a key),
    so /docs asks for a key once (*Authorize*) and sends it with every try."""
    from functions.api.callers import API_KEY_HEADER

    components = document.setdefault("components", {})
    components.setdefault("securitySchemes", {})[API_KEY_SCHEME] = {
        "type": "apiKey",
        "in": "header",
        "name": API_KEY_HEADER,
        "description": "An API key (`modelway keys create`; `modelway up` prints an admin key).",
    }
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            if "401" in operation.get("responses", {}):
                operation["security"] = [{API_KEY_SCHEME: []}]


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
