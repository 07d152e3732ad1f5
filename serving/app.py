"""The HTTP apps (Starlette under uvicorn).

``create_hosting_app``: the SageMaker hosting contract, one model (``GET /ping``,
``POST /invocations``); errors are ``{"error", "code"}`` with 400/413/500/503.

``create_local_app``: every version of every model under an artifacts directory, behind the
SageMaker *runtime* path ``POST /endpoints/{prefix}-{model}/invocations`` (variant from
``X-Amzn-SageMaker-Target-Variant: v{N}``, else the highest version), so boto3's
``sagemaker-runtime`` client pointed at it works unchanged; errors as SageMaker's
(``sagemaker_error_responses``).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from serving import sagemaker_error_responses
from serving.batching import RequestTiming
from serving.config import ServingConfig
from serving.deadlines import CUSTOM_ATTRIBUTES, reply_attributes, request_deadline, request_id
from serving.exceptions import (
    DeadlineExceeded,
    Overloaded,
    PayloadTooLarge,
    ServingError,
    UnknownTarget,
)
from serving.model import OnnxModel
from serving.protocol import HEADER_LENGTH, EncodedResponse, decode_request, json_header_length
from serving.repository import LocalRepository

log = logging.getLogger("serving")

# Bodies (and results) larger than this are decoded (encoded) on a worker thread so one big
# request does not stall every other connection on the event loop; small ones are cheaper
# to handle inline than to hand off.
_OFFLOAD_BYTES = 256 * 1024
_VARIANT_RE = re.compile(r"^v([1-9][0-9]{0,17})$")
TARGET_VARIANT = "x-amzn-sagemaker-target-variant"
INVOKED_VARIANT = "x-Amzn-Invoked-Production-Variant"


# -- the request pipeline shared by both apps ------------------------------------------


async def _read_body(request: Request, *, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"request body of {declared} bytes is over the {limit} byte limit")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"request body is over the {limit} byte limit")
        chunks.append(chunk)
    return b"".join(chunks)


async def run_inference(model: OnnxModel, request: Request, *, limit: int) -> Response:
    """Body -> preprocess -> batched predict -> postprocess -> HTTP response. A request whose
    deadline (``deadlines``) passes first is answered 504 ``model_timeout``."""
    deadline = request_deadline(request.headers)
    timing = RequestTiming()
    # Tell the batcher this request is coming, so a batch it is forming may wait for it.
    model.batcher.announce()
    submitted = False
    try:
        body = await _read_body(request, limit=limit)
        json_length = json_header_length(
            content_type=request.headers.get("content-type"),
            header=request.headers.get(HEADER_LENGTH),
        )
        if len(body) > _OFFLOAD_BYTES:
            infer_request = await run_in_threadpool(
                decode_request, body, json_length=json_length, signature=model.signature
            )
        else:
            infer_request = decode_request(body, json_length=json_length, signature=model.signature)
        inputs = model.preprocess(infer_request)
        submitted = True  # submit settles the announcement even when it refuses
        future = model.predict(inputs, announced=True, deadline=deadline, timing=timing)
    finally:
        if not submitted:
            model.batcher.withdraw()
    if deadline is None:
        outputs = await asyncio.wrap_future(future)
    else:
        try:
            # On time-out the batcher's future is cancelled: still queued, it is never run.
            outputs = await asyncio.wait_for(
                asyncio.wrap_future(future), timeout=max(0.0, deadline - time.monotonic())
            )
        except TimeoutError:
            raise DeadlineExceeded("the request's deadline passed before it was computed") from None
    if sum(a.nbytes for a in outputs.values()) > _OFFLOAD_BYTES:
        encoded = await run_in_threadpool(model.postprocess, infer_request, outputs)
    else:
        encoded = model.postprocess(infer_request, outputs)
    response = _encoded_response(encoded)
    response.headers[CUSTOM_ATTRIBUTES] = reply_attributes(
        request_id=request_id(request.headers), queued=timing.queued, computed=timing.computed
    )
    return response


def _encoded_response(encoded: EncodedResponse) -> Response:
    headers = {}
    if encoded.json_length is not None:
        headers["Inference-Header-Content-Length"] = str(encoded.json_length)
    return Response(content=encoded.body, headers=headers, media_type=encoded.content_type)


def _plain_error(exc: ServingError) -> JSONResponse:
    headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after is not None else None
    return JSONResponse(exc.to_dict(), status_code=exc.status, headers=headers)


async def _http_error(request: Request, exc: Exception) -> Response:
    # Unknown routes and methods answer in the platform's error shape too.
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return JSONResponse({"error": str(exc.detail), "code": code}, status_code=exc.status_code)


# -- SageMaker hosting contract --------------------------------------------------------


def create_hosting_app(
    *, model_dir: Path | str = "/opt/ml/model", config: ServingConfig | None = None
) -> Starlette:
    """One model, loaded at startup (a model that cannot load stops the server: SageMaker
    then reports the failed container instead of an endpoint that answers 500s)."""
    config = config or ServingConfig.from_env()
    source = Path(model_dir)
    holder: dict[str, OnnxModel] = {}

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        model = await run_in_threadpool(OnnxModel.from_source, source, config=config)
        holder["model"] = model
        app.state.model = model
        log.info("serving %s version %s from %s", model.name, model.version, source)
        try:
            yield
        finally:
            model.close()

    async def ping(request: Request) -> Response:
        model = holder.get("model")
        if model is None or not model.ready:
            return JSONResponse({"error": "model not loaded", "code": "not_ready"}, status_code=503)
        return JSONResponse({"status": "ok", "model": model.name, "version": model.version})

    async def invocations(request: Request) -> Response:
        model = holder.get("model")
        if model is None or not model.ready:
            return _plain_error(Overloaded("model not loaded"))
        try:
            return await run_inference(model, request, limit=config.max_request_bytes)
        except ServingError as exc:
            return _plain_error(exc)
        except Exception:
            log.exception(
                "unexpected failure on /invocations (request %s)", request_id(request.headers)
            )
            return _plain_error(ServingError("internal error"))

    return Starlette(
        routes=[
            Route("/ping", ping, methods=["GET"]),
            Route("/invocations", invocations, methods=["POST"]),
        ],
        lifespan=lifespan,
        exception_handlers={HTTPException: _http_error},
    )


# -- local multi-version mode (SageMaker runtime path) ----------------------------------


def _parse_variant(raw: str | None) -> int | None:
    if raw is None or raw == "":
        return None
    match = _VARIANT_RE.fullmatch(raw)
    if match is None:
        raise UnknownTarget(f"Target variant {raw!r} is not a version variant (v<N>).")
    return int(match.group(1))


def create_local_app(
    *,
    artifacts_dir: Path | str,
    endpoint_prefix: str,
    config: ServingConfig | None = None,
) -> Starlette:
    config = config or ServingConfig.from_env()
    repository = LocalRepository(artifacts_dir=Path(artifacts_dir), config=config)
    endpoint_start = f"{endpoint_prefix}-"

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        log.info("serving %s/*/*/model.tar.gz as %s-{model}", artifacts_dir, endpoint_prefix)
        try:
            yield
        finally:
            await run_in_threadpool(repository.close)

    async def ping(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def stats(request: Request) -> Response:
        """Batching counters per loaded version (for the benchmark and debugging)."""
        body: dict[str, Any] = {
            f"{m.name}/{m.version}": {**m.batcher.stats.snapshot(), "queued": m.batcher.queued}
            for m in repository.models()
        }
        return JSONResponse(body)

    async def invoke_endpoint(request: Request) -> Response:
        endpoint: str = request.path_params["endpoint"]
        amzn_request_id = str(uuid.uuid4())
        try:
            if not endpoint.startswith(endpoint_start):
                raise UnknownTarget(f"Endpoint {endpoint} not found.")
            model_name = endpoint[len(endpoint_start) :]
            wanted = _parse_variant(request.headers.get(TARGET_VARIANT))
            version = repository.resolve(model=model_name, version=wanted, endpoint=endpoint)
            model = repository.loaded(model=model_name, version=version)
            if model is None:
                model = await run_in_threadpool(repository.load, model=model_name, version=version)
        except UnknownTarget as exc:
            return sagemaker_error_responses.validation_error(exc.message)
        except ServingError as exc:  # the version exists but cannot be loaded
            return sagemaker_error_responses.model_error(exc)
        try:
            response = await run_inference(model, request, limit=config.max_request_bytes)
        except Overloaded as exc:
            return sagemaker_error_responses.service_unavailable(
                exc.message, retry_after=exc.retry_after
            )
        except ServingError as exc:
            return sagemaker_error_responses.model_error(exc)
        except Exception:
            log.exception(
                "unexpected failure on %s (request %s)",
                request.url.path,
                request_id(request.headers),
            )
            return sagemaker_error_responses.model_error(ServingError("internal error"))
        response.headers[INVOKED_VARIANT] = f"v{version}"
        response.headers["x-amzn-RequestId"] = amzn_request_id
        return response

    app = Starlette(
        routes=[
            Route("/ping", ping, methods=["GET"]),
            Route("/stats", stats, methods=["GET"]),
            Route("/endpoints/{endpoint}/invocations", invoke_endpoint, methods=["POST"]),
        ],
        lifespan=lifespan,
        exception_handlers={HTTPException: _http_error},
    )
    app.state.repository = repository
    return app
