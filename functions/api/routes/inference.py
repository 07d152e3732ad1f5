"""The data plane: Open Inference Protocol model metadata, readiness and inference.

Every route needs a key allowed the path's model. Inference answers carry ``x-model-version``
(the version that answered) and, when an alias chose it, ``x-model-alias``.

The two inference routes are the hot path and take no FastAPI dependencies: the request goes
decode → authenticate (cached) → authorize → resolve (cached) → validate → invoke → answer in
one plain function (``_infer``), run inline under Mangum and in one worker thread under
uvicorn (``RouterState.run_blocking``). The body is forwarded as it came and the model
server's answer is passed back as it came: each is parsed once (validation) or not at all.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request, Response

from functions.api.deadlines import TIMEOUT_HEADER, request_deadline
from functions.api.deps import (
    ClockDep,
    ModelCallerDep,
    RegistryDep,
    RngDep,
    RouterState,
    RuntimeDep,
    StateDep,
    authenticate,
    receive_body,
)
from functions.api.http_errors import VERSION_HEADER
from functions.api.openapi import (
    INFER_REQUEST_EXAMPLE,
    INFER_RESPONSE_EXAMPLE,
    KEYED,
    error_responses,
)
from functions.api.schemas import VersionPath
from functions.api.services.inference import InferenceResult, InferenceService, Target
from functions.api.services.lookup import CachedRegistryReads
from functions.api.trace import (
    REQUEST_ID_HEADER,
    SERVER_TIMING_HEADER,
    TRACEPARENT_HEADER,
    Timings,
)
from functions.core import keys
from functions.core.exceptions import InvalidRequest, ModelwayError, PayloadTooLarge

router = APIRouter(prefix="/v2/models", tags=["inference"], responses=error_responses(*KEYED, 404))
# Inference also answers for the model: its size limit, its signature, its endpoint.
INFER_ERRORS = error_responses(413, 422, 502, 503, 504)


def _infer_doc(*, alias: bool = False) -> dict[str, Any]:
    """What the inference routes read by hand (they take no FastAPI parameters): the body,
    in either form, and the headers and query that steer them."""
    text = {"type": "string"}
    parameters = [
        {
            "name": BINARY_HEADER,
            "in": "header",
            "schema": {"type": "integer", "minimum": 0},
            "description": "Binary tensor extension: the length of the JSON header that "
            "starts the body.",
        },
        {
            "name": TIMEOUT_HEADER,
            "in": "header",
            "schema": {"type": "number", "exclusiveMinimum": 0},
            "description": "Seconds the caller will wait (at most the router's limit).",
        },
        {
            "name": REQUEST_ID_HEADER,
            "in": "header",
            "schema": text,
            "description": "The caller's id for this request, echoed back and logged "
            "(else one from `traceparent` or API Gateway's request id).",
        },
        {
            "name": TRACEPARENT_HEADER,
            "in": "header",
            "schema": text,
            "description": "W3C trace context; its trace id becomes the request id.",
        },
    ]
    if alias:
        parameters += [
            {"name": ALIAS_HEADER, "in": "header", "schema": text, "description": ALIAS_DOC},
            {"name": "alias", "in": "query", "schema": text, "description": ALIAS_DOC},
        ]
    return {
        "parameters": parameters,
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {"$ref": "#/components/schemas/InferenceRequest"},
                    "examples": {
                        "digits": {
                            "summary": "The digits demo: a handwritten 7",
                            "value": INFER_REQUEST_EXAMPLE,
                        }
                    },
                },
                "application/octet-stream": {
                    "schema": {"type": "string", "format": "binary"},
                    "description": "JSON header then raw tensor data (binary extension).",
                },
            },
        },
        "responses": {
            "200": {
                "description": "The outputs, and the version that answered in `x-model-version`.",
                "headers": {
                    VERSION_HEADER: {
                        "schema": {"type": "integer"},
                        "description": "The version that answered.",
                    },
                    REQUEST_ID_HEADER: {"schema": text, "description": "This request's id."},
                    SERVER_TIMING_HEADER: {
                        "schema": text,
                        "description": "The router's time by phase (auth, resolve, validate, "
                        "model, ...), in milliseconds.",
                    },
                    BINARY_HEADER: {
                        "schema": {"type": "integer", "minimum": 0},
                        "description": "Present when the answer is binary: the length of its "
                        "JSON header.",
                    },
                    **(
                        {ALIAS_HEADER: {"schema": text, "description": "The alias resolved."}}
                        if alias
                        else {}
                    ),
                },
                "content": {
                    "application/json": {"examples": {"digits": {"value": INFER_RESPONSE_EXAMPLE}}}
                },
            }
        },
    }


ALIAS_DOC = "The alias to resolve (default: `default`)."

ALIAS_HEADER = "x-model-alias"
BINARY_HEADER = "inference-header-content-length"
BINARY_RESPONSE_TYPE = "application/octet-stream"


async def get_inference_service(
    state: StateDep, registry: RegistryDep, runtime: RuntimeDep, rng: RngDep, clock: ClockDep
) -> InferenceService:
    reads = CachedRegistryReads(registry=registry, cache=state.lookups, now=clock())
    return InferenceService(reads=reads, runtime=runtime, rng=rng)


ServiceDep = Annotated[InferenceService, Depends(get_inference_service)]
AliasHeader = Annotated[str | None, Header(alias=ALIAS_HEADER)]
AliasQuery = Annotated[str | None, Query(alias="alias")]


@router.get("/{model}")
def model_metadata(model: str, caller: ModelCallerDep, service: ServiceDep) -> dict[str, Any]:
    return service.model_metadata(model=model)


@router.get("/{model}/ready", responses=error_responses(422))
def model_ready(
    model: str,
    caller: ModelCallerDep,
    service: ServiceDep,
    alias_header: AliasHeader = None,
    alias_query: AliasQuery = None,
) -> dict[str, Any]:
    target = service.by_alias(model=model, alias=alias_header or alias_query)
    return {"name": model, "version": str(target.version.version), "ready": True}


@router.get("/{model}/versions/{version}")
def version_metadata(
    model: str, version: VersionPath, caller: ModelCallerDep, service: ServiceDep
) -> dict[str, Any]:
    return service.version_metadata(model=model, version=version)


@router.get("/{model}/versions/{version}/ready")
def version_ready(
    model: str, version: VersionPath, caller: ModelCallerDep, service: ServiceDep
) -> dict[str, Any]:
    service.pinned(model=model, version=version)
    return {"name": model, "version": str(version), "ready": True}


@router.post("/{model}/infer", responses=INFER_ERRORS, openapi_extra=_infer_doc(alias=True))
async def infer(model: str, request: Request) -> Response:
    """The model's ``default`` alias, or the alias named by ``x-model-alias`` / ``?alias=``."""
    alias = request.headers.get(ALIAS_HEADER) or request.query_params.get("alias")
    return await _infer(request, model=model, alias=alias)


@router.post(
    "/{model}/versions/{version}/infer", responses=INFER_ERRORS, openapi_extra=_infer_doc()
)
async def infer_version(model: str, version: VersionPath, request: Request) -> Response:
    return await _infer(request, model=model, version=version)


async def _infer(
    request: Request, *, model: str, alias: str | None = None, version: int | None = None
) -> Response:
    state: RouterState = request.app.state.modelway
    # Timed from arrival; a bad X-Request-Timeout is reported after the caller's checks.
    bad_timeout: InvalidRequest | None = None
    try:
        deadline: float | None = request_deadline(
            headers=request.headers,
            event=request.scope.get("aws.event"),
            limit_seconds=state.settings.request_timeout_seconds,
        )
    except InvalidRequest as exc:
        bad_timeout, deadline = exc, None
    else:
        asked = request.headers.get(TIMEOUT_HEADER)
        request.state.caller_deadline = (
            asked is not None and float(asked) < state.settings.request_timeout_seconds
        )
    # Received first (the only await), refused in the order the checks always had: the
    # caller (401/403) before the body's size (413).
    too_large: PayloadTooLarge | None = None
    try:
        body = await receive_body(
            request, limit=state.settings.payload_limit(request.headers.get("content-type"))
        )
    except PayloadTooLarge as exc:
        too_large, body = exc, b""
    json_header_length = request.headers.get(BINARY_HEADER)

    # Set by ObserveMiddleware (absent only when the app runs without it).
    timings: Timings | None = getattr(request.state, "timings", None)
    request_id: str | None = getattr(request.state, "request_id", None)

    def work() -> InferenceResult:
        if timings is not None:
            timings.lap("receive")
        registry = state.registry
        caller = authenticate(request, state, registry=registry)
        keys.authorize_model(caller, model)
        if too_large is not None:
            raise too_large
        if bad_timeout is not None:
            raise bad_timeout
        if timings is not None:
            timings.lap("auth")
        reads = CachedRegistryReads(registry=registry, cache=state.lookups, now=state.clock())
        service = InferenceService(reads=reads, runtime=state.runtime, rng=state.rng)
        if version is None:
            target = service.by_alias(model=model, alias=alias)
        else:
            target = service.pinned(model=model, version=version)
        _observe(request, model=model, version=target.version.version)
        if timings is not None:
            timings.lap("resolve")
        started = time.perf_counter()
        try:
            result = service.infer(
                target=target,
                body=body,
                json_header_length=json_header_length,
                content_type=request.headers.get("content-type"),
                deadline=deadline,
                request_id=request_id,
                timings=timings,
            )
        except ModelwayError as exc:
            _tap(request, reads, target, body=body, started=started, error=exc)
            raise
        _tap(request, reads, target, body=body, started=started, result=result)
        return result

    result = await state.run_blocking(work)
    return _response(request, model=model, result=result)


def _tap(
    request: Request,
    reads: CachedRegistryReads,
    target: Target,
    *,
    body: bytes,
    started: float,
    result: InferenceResult | None = None,
    error: ModelwayError | None = None,
) -> None:
    """Capture and shadow traffic (``functions.api.services.tap``): sampled here, done on the
    tap's threads; the caller's answer is already what it will be."""
    state: RouterState = request.app.state.modelway
    state.tap.after(
        reads=reads,
        target=target,
        body=body,
        content_type=request.headers.get("content-type"),
        json_header_length=request.headers.get(BINARY_HEADER),
        request_id=getattr(request.state, "request_id", None),
        key_id=getattr(request.state, "key_id", None),
        latency_ms=(time.perf_counter() - started) * 1000,
        result=result,
        error=error,
    )


def _observe(request: Request, *, model: str, version: int) -> None:
    """What the request metrics are labelled with (see ``functions.api.observability``)."""
    request.state.model = model
    request.state.model_version = version


def _response(request: Request, *, model: str, result: InferenceResult) -> Response:
    _observe(request, model=model, version=result.version)
    headers = {VERSION_HEADER: str(result.version)}
    if result.alias is not None:
        headers[ALIAS_HEADER] = result.alias
    media_type = result.content_type
    if result.json_header_size is not None:
        # The binary extension's own framing: the client finds the JSON header by this length.
        headers[BINARY_HEADER] = str(result.json_header_size)
        media_type = BINARY_RESPONSE_TYPE
    return Response(content=result.body, media_type=media_type, headers=headers)
