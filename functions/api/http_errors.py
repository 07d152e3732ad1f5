"""The one place errors become HTTP: ``{"error": message, "code": code}`` with its status.

Domain errors (``functions.core.exceptions``) carry their own status and code; FastAPI's request
validation, Starlette's routing errors and anything unexpected are given the same shape. An
unexpected exception is logged with its traceback and answered as a bare 500: the client never
sees a stack trace.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from functions.api.openapi import allowed_methods
from functions.core.exceptions import ModelwayError

logger = logging.getLogger("modelway.api")

VERSION_HEADER = "x-model-version"
# Where the client can usefully retry, say when (seconds) unless the error said itself.
DEFAULT_RETRY_AFTER = {429: 1, 503: 5}
_HTTP_CODES = {
    400: "invalid_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


def error_response(
    *, status: int, message: str, code: str, retry_after: int | None = None
) -> JSONResponse:
    headers = {}
    retry_after = retry_after if retry_after is not None else DEFAULT_RETRY_AFTER.get(status)
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    return JSONResponse({"error": message, "code": code}, status_code=status, headers=headers)


async def _modelway_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ModelwayError)
    if exc.status >= 500:
        logger.warning(
            "%s %s -> %s %s: %s",
            request.method,
            request.url.path,
            exc.status,
            exc.code,
            exc.message,
        )
    response = error_response(
        status=exc.status, message=exc.message, code=exc.code, retry_after=exc.retry_after
    )
    # An inference that failed after its version was chosen still says which version it was.
    version = getattr(request.state, "model_version", None)
    if version is not None:
        response.headers[VERSION_HEADER] = str(version)
    return response


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    first: dict[str, Any] = errors[0] if errors else {}
    location = [str(part) for part in first.get("loc", ())]
    where = ".".join(location) or "request"
    message = f"{where}: {first.get('msg', 'invalid')}"
    # A body that is missing or not JSON is not a request at all (400); a body whose fields
    # are wrong is (422). Path and query parameters of the wrong type are a bad request too.
    if location[:1] != ["body"] or first.get("type") == "json_invalid" or location == ["body"]:
        return error_response(status=400, message=message, code="invalid_request")
    return error_response(status=422, message=message, code="validation_error")


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 404:
        message = f"no route {request.method} {request.url.path}"
    elif exc.status_code == 405:
        message = f"method {request.method} not allowed on {request.url.path}"
    else:
        message = str(exc.detail)
    response = error_response(
        status=exc.status_code, message=message, code=_HTTP_CODES.get(exc.status_code, "error")
    )
    for name, value in (exc.headers or {}).items():
        response.headers[name] = value
    if exc.status_code == 405:
        # Starlette names the methods of the first route that matched the path only; the
        # path may have others (GET and POST /v1/keys are two routes).
        methods = allowed_methods(request.app, _route_path(request))
        if methods is not None:
            response.headers["Allow"] = ", ".join(methods)
    return response


def _route_path(request: Request) -> str:
    path: str = request.scope["path"]
    root: str = request.scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ModelwayError, _modelway_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_middleware(InternalErrorMiddleware)


class InternalErrorMiddleware:
    """Turns an unexpected exception into the standard 500 body.

    A plain ASGI middleware rather than an ``Exception`` handler: Starlette re-raises after
    running such a handler, which under Mangum would log a second traceback and could replace
    the JSON body with its own plain-text one.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            logger.exception("unhandled error on %s %s", scope.get("method"), scope.get("path"))
            if started:  # too late for a clean answer; let the server close the connection
                raise
            body = json.dumps({"error": "internal error", "code": "internal_error"}).encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": 500,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
