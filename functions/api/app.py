"""The router: one FastAPI app for the Lambda handler (via Mangum) and for uvicorn locally
(``uvicorn --factory functions.api.app:app_from_environment``)."""

from __future__ import annotations

import random

from fastapi import FastAPI

from functions.api.deps import Clock, new_state
from functions.api.errors import install_error_handlers
from functions.api.observability import ObserveMiddleware, Observer
from functions.api.openapi import openapi_document
from functions.api.routes import admin, health, inference, jobs
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
        # The API is JSON for machines; no docs pages to serve from a Lambda.
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json" if settings.is_local else None,
    )
    # The document is the contract: errors listed per route, no body that is never sent.
    app.openapi = lambda: openapi_document(app)  # type: ignore[method-assign]
    app.state.modelway = new_state(settings=settings, clock=clock, rng=rng)
    app.state.observer = observer
    install_error_handlers(app)
    # Outermost, so it also times (and counts) the 500s the error middleware produces.
    app.add_middleware(ObserveMiddleware)
    for module in (health, inference, admin, jobs):
        app.include_router(module.router)
    return app


def app_from_environment() -> FastAPI:
    """The app as served: settings from the environment, and the data plane's clients built
    before the first request (``RouterState.prepare``) instead of by it."""
    app = create_app(settings=get_settings())
    app.state.modelway.prepare()
    return app
