"""FastAPI dependencies: the app's settings, clients and caches, and the caller.

Clients come from ``functions.core.backends.Backends`` (the one wiring point), built on
first use and kept for the app's life (one Lambda container). Everything that reaches a
client goes through the providers below, so tests swap a client with
``app.dependency_overrides[get_runtime] = ...``.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, TypeVar

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from functions.api.callers import KeyCache, LastUsed, resolve_caller
from functions.api.services.lookup import CachedRegistryReads, LookupCache
from functions.core import backends, keys, snapstart
from functions.core.artifacts.base import ArtifactStore
from functions.core.deploy.base import Deployer
from functions.core.exceptions import PayloadTooLarge
from functions.core.registry.base import ApiKey, Registry
from functions.core.runtime.base import RuntimeClient
from functions.core.settings import Settings

if TYPE_CHECKING:
    from functions.api.services.tap import Tap
    from functions.core.mirror import Mirror

Clock = Callable[[], float]
T = TypeVar("T")

logger = logging.getLogger("modelway.api")


class RouterState:
    """Per-app (per-container) state: settings, lazily built clients, caches, clock, RNG."""

    def __init__(self, *, settings: Settings, clock: Clock, rng: random.Random) -> None:
        self.settings = settings
        self.clock = clock
        self.rng = rng
        self.key_cache = KeyCache(ttl=settings.key_cache_ttl_seconds)
        self.lookups = LookupCache(ttl=settings.registry_cache_ttl_seconds)
        self.last_used = LastUsed()
        # Under Mangum one event at a time has the event loop to itself: blocking work runs
        # inline (``run_blocking``); a worker thread per event would cost more than the work.
        self.blocking_inline = False

        self.backends = backends.Backends.from_settings(settings)
        self._tap: Tap | None = None
        self._tap_lock = threading.Lock()

    # The one wiring point (``functions.core.backends``); each part is built on first use.
    @property
    def registry(self) -> Registry:
        return self.backends.registry

    @registry.setter
    def registry(self, registry: Registry) -> None:  # tests swap it
        self.backends = self.backends.replace(registry=registry)

    @property
    def store(self) -> ArtifactStore:
        return self.backends.store

    @property
    def runtime(self) -> RuntimeClient:
        return self.backends.runtime

    @runtime.setter
    def runtime(self, runtime: RuntimeClient) -> None:  # tests swap it
        self.backends = self.backends.replace(runtime=runtime)

    @property
    def key_gateway(self) -> keys.KeyGateway | None:
        """On AWS, where keys must also exist as API Gateway API keys (usage plan)."""
        return self.backends.key_gateway

    @property
    def deployer(self) -> Deployer | None:
        """On AWS, SageMaker models and endpoints follow publishes and alias moves."""
        return self.backends.deployer

    @property
    def mirror(self) -> Mirror:
        """On AWS, the SageMaker Model Registry shows versions and their approval."""
        return self.backends.mirror

    @property
    def tap(self) -> Tap:
        """Capture and shadow traffic after an answer (``functions.api.services.tap``); its
        threads start with the first sampled request."""
        if self._tap is None:
            with self._tap_lock:
                if self._tap is None:
                    self._tap = self._build_tap()
        return self._tap

    def _build_tap(self) -> Tap:
        from functions.api.services.inference import InferenceService
        from functions.api.services.tap import Tap
        from functions.core.capture.writer import CaptureWriter

        def sink(key: str, body: bytes) -> None:
            self.store.put_object(key=key, body=body)

        def service() -> InferenceService:
            reads = CachedRegistryReads(
                registry=self.registry, cache=self.lookups, now=self.clock()
            )
            return InferenceService(reads=reads, runtime=self.runtime, rng=self.rng)

        return Tap(
            writer=CaptureWriter(sink=sink),
            service=service,
            rng=self.rng,
            shadow_timeout_seconds=self.settings.request_timeout_seconds,
            # In a Lambda sandbox a shadow call could be frozen mid-flight with the invocation
            # (and its latency with it): there the batch function makes it (functions.batch.shadow).
            defer_shadow=not self.settings.is_local,
        )

    def prepare(self) -> None:
        """Build what the data plane uses now (the init phase), so that no event pays for it.

        The AWS implementations build and prime their boto3 clients (``prepare``); the local
        ones have nothing more to do. Control-plane clients stay lazy: few requests use them.
        """
        self.backends.prepare("registry", "runtime")

    async def run_blocking(self, work: Callable[[], T]) -> T:
        """``work`` (registry and runtime calls) inline under Mangum, else in the thread pool
        so that uvicorn keeps serving other requests meanwhile."""
        if self.blocking_inline:
            return work()
        return await run_in_threadpool(work)

    def renew(self) -> None:
        """After a SnapStart restore: what one snapshot must not hand to many sandboxes
        (``functions.core.snapstart``): the canary RNG's state and every cache whose entries
        were aged on the snapshotted monotonic clock (keys, aliases, versions, last use)."""
        snapstart.reseed(self.rng)
        self.key_cache.clear()
        self.lookups.clear()
        self.last_used.clear()


def new_state(
    *, settings: Settings, clock: Clock | None = None, rng: random.Random | None = None
) -> RouterState:
    return RouterState(settings=settings, clock=clock or time.monotonic, rng=rng or random.Random())


# Providers ------------------------------------------------------------------------------
# ``async`` unless they may block on I/O: FastAPI runs a sync dependency on a worker thread,
# and each hop costs latency. (A client's first build runs on the loop, once per container.)
async def get_state(request: Request) -> RouterState:
    state: RouterState = request.app.state.modelway
    return state


StateDep = Annotated[RouterState, Depends(get_state)]


async def get_settings(state: StateDep) -> Settings:
    return state.settings


async def get_registry(state: StateDep) -> Registry:
    return state.registry


async def get_store(state: StateDep) -> ArtifactStore:
    return state.store


async def get_runtime(state: StateDep) -> RuntimeClient:
    return state.runtime


async def get_clock(state: StateDep) -> Clock:
    return state.clock


async def get_rng(state: StateDep) -> random.Random:
    return state.rng


SettingsDep = Annotated[Settings, Depends(get_settings)]
RegistryDep = Annotated[Registry, Depends(get_registry)]
StoreDep = Annotated[ArtifactStore, Depends(get_store)]
RuntimeDep = Annotated[RuntimeClient, Depends(get_runtime)]
ClockDep = Annotated[Clock, Depends(get_clock)]
RngDep = Annotated[random.Random, Depends(get_rng)]


def authenticate(request: Request, state: RouterState, *, registry: Registry) -> ApiKey:
    """The authenticated caller (401 otherwise); see ``functions.api.callers``. Blocking on a
    cache miss (a registry read)."""
    now = state.clock()
    key = resolve_caller(
        headers=request.headers,
        event=request.scope.get("aws.event"),
        trust_authorizer=not state.settings.is_local,
        registry=registry,
        key_cache=state.key_cache,
        now=now,
    )
    state.last_used.touch(registry=registry, key_id=key.key_id, now=now)
    request.state.key_id = key.key_id
    return key


def get_caller(request: Request, state: StateDep, registry: RegistryDep) -> ApiKey:
    return authenticate(request, state, registry=registry)


CallerDep = Annotated[ApiKey, Depends(get_caller)]


async def get_admin(caller: CallerDep) -> ApiKey:
    """The caller, when it holds the admin scope (403 otherwise)."""
    keys.authorize_admin(caller)
    return caller


AdminDep = Annotated[ApiKey, Depends(get_admin)]


async def get_model_caller(model: str, caller: CallerDep) -> ApiKey:
    """The caller, when its key may call the path's ``{model}`` (403 otherwise)."""
    keys.authorize_model(caller, model)
    return caller


ModelCallerDep = Annotated[ApiKey, Depends(get_model_caller)]


async def receive_body(request: Request, *, limit: int) -> bytes:
    """The raw body, refused with 413 past ``limit`` bytes (Content-Length first, so an
    oversized body is not read at all when the client declared its size)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"the request body is {declared} bytes; the limit is {limit}")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise PayloadTooLarge(f"the request body is over the {limit}-byte limit")
    return bytes(body)


async def read_body(request: Request, settings: SettingsDep) -> bytes:
    return await receive_body(
        request, limit=settings.payload_limit(request.headers.get("content-type"))
    )


BodyDep = Annotated[bytes, Depends(read_body)]
