"""The router: one FastAPI app for the Lambda handler (via Mangum) and for uvicorn locally
(``uvicorn --factory functions.api.app:app_from_environment``).

The data plane's routes (health, inference) are there from the start. The control plane's
(``/v1``: admin and jobs) are added by the first request under ``/v1`` (``ControlPlane``):
their modules — publishing, deployment, the pydantic request bodies — are most of the app's
import time, and an inference never needs them. Under SnapStart they are added before the
snapshot (``functions.api.handler``), so no restored sandbox pays for them either.
"""

from __future__ import annotations

import random
import threading
from typing import Any

from fastapi import FastAPI
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from functions.api import docs
from functions.api.deps import Clock, new_state
from functions.api.http_errors import install_error_handlers
from functions.api.observability import ObserveMiddleware, Observer
from functions.api.openapi import OPENAPI_PATH, openapi_document
from functions.api.routes import health, inference
from functions.core import snapstart
from functions.core.settings import Settings, get_settings


def create_app(
    *,
    settings: Settings | None = None,
    clock: Clock | None = None,
    rng: random.Random | None = None,
    observer: Observer | None = None,
) -> FastAPI:
    """Build the router. ``clock`` (seconds, monotonic) ages the key and lookup caches and
    ``rng`` splits canary traffic; both default to the real ones and exist for tests.
    ``observer`` receives one ``RequestRecord`` per request (the Lambda handler's metrics)."""
    settings = settings or get_settings()
    app = FastAPI(
        title="modelway",
        summary="ONNX models over the Open Inference Protocol, with API keys.",
        # /docs is ours (functions.api.docs: no CDN, relative URLs for API Gateway's stage).
        docs_url=None,
        redoc_url=None,
        openapi_url=OPENAPI_PATH,
    )
    control_plane = ControlPlane(app)
    app.state.control_plane = control_plane

    # The document is the contract (errors listed per route, no body that is never sent),
    # and it describes every route: the control plane's too.
    def document() -> dict[str, Any]:
        control_plane.load()
        return openapi_document(app)

    app.openapi = document  # type: ignore[method-assign]
    app.state.modelway = new_state(settings=settings, clock=clock, rng=rng)
    app.state.observer = observer
    install_error_handlers(app)
    # Outermost, so it also times (and counts) the 500s the error middleware produces.
    app.add_middleware(ObserveMiddleware)
    for module in (health, inference, docs):
        app.include_router(module.router)
    app.router.routes.append(Route(f"{ControlPlane.PREFIX}/{{rest:path}}", control_plane))
    return app


class ControlPlane:
    """The ``/v1`` routes, added to ``app`` once, by the first request that needs them (see
    the module's docstring) or by ``load()``. Until then one catch-all route stands in for
    them; the request that loads them is routed again, as if they had always been there."""

    PREFIX = "/v1"

    def __init__(self, app: FastAPI) -> None:
        self._app = app
        self._lock = threading.Lock()
        self.loaded = False

    def load(self) -> None:
        if self.loaded:
            return
        with self._lock:
            if self.loaded:
                return
            from functions.api.routes import admin, jobs

            routes = self._app.router.routes
            routes[:] = [r for r in routes if getattr(r, "endpoint", None) is not self]
            for module in (admin, jobs):
                self._app.include_router(module.router)
            self.loaded = True

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.load()
        await self._app.router(scope, receive, send)


def app_from_environment() -> FastAPI:
    """The app as served: settings from the environment, and the data plane's clients built
    before the first request (``RouterState.prepare``) instead of by it."""
    app = create_app(settings=get_settings())
    app.state.modelway.prepare()
    snapstart.settle()
    return app
