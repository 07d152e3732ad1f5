"""Builders for the router tests: a hand-driven clock, registry content, keys and requests
(the fake runtime client is ``runtime_testkit``'s, shared with batch). Fixtures over these
live in ``conftest.py``."""

from __future__ import annotations

import random
from typing import Any

from fastapi import FastAPI

from functions.api.app import create_app
from functions.api.deps import get_registry, get_runtime
from functions.core import keys
from functions.core.clock import utc_now
from functions.core.manifest import Manifest, ParityReport, Signature, TensorSpec
from functions.core.naming import endpoint_name, variant_name
from functions.core.registry.base import ModelVersion
from functions.core.registry.sqlite import SqliteRegistry
from functions.core.settings import Settings
from tests.runtime_testkit import FakeRuntime

MODEL = "digits"
PREFIX = "modelway-test"
PAYLOAD_LIMIT = 64 * 1024
# The digits demo's signature (model_build/digits): raw 8x8 pixels in, logits and label out.
DIGITS_SIGNATURE = Signature(
    inputs=[TensorSpec(name="input", datatype="FP32", shape=[-1, 1, 8, 8])],
    outputs=[
        TensorSpec(name="logits", datatype="FP32", shape=[-1, 10]),
        TensorSpec(name="label", datatype="INT64", shape=[-1]),
    ],
)


class FakeClock:
    """Monotonic seconds that move only when a test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def build_app(
    *,
    settings: Settings,
    registry: SqliteRegistry,
    runtime: FakeRuntime,
    clock: FakeClock,
    rng: random.Random,
) -> FastAPI:
    app = create_app(settings=settings, clock=clock, rng=rng)
    # The inference routes read the clients from the app's state (no dependencies on the
    # hot path); the other routes through the providers.
    app.state.modelway.registry = registry
    app.state.modelway.runtime = runtime
    app.dependency_overrides[get_registry] = lambda: registry
    app.dependency_overrides[get_runtime] = lambda: runtime
    return app


def add_version(
    registry: SqliteRegistry,
    *,
    model: str = MODEL,
    signature: Signature = DIGITS_SIGNATURE,
    alias: str | None = "default",
    manifest_extra: dict[str, Any] | None = None,
) -> ModelVersion:
    """Register a version directly (as ``modelway publish`` would), optionally aliased;
    ``manifest_extra`` adds manifest fields (labels, a capture policy, ...)."""
    number = registry.next_version(model=model)
    sha = f"{number:064x}"
    manifest = Manifest(
        name=model,
        version=number,
        sha256=sha,
        signature=signature,
        parity=ParityReport(
            samples=8, max_abs_diff=0.0, argmax_agreement=1.0, tolerance=1e-4, passed=True
        ),
        **(manifest_extra or {}),
    )
    version = registry.register_version(
        version=ModelVersion(
            model=model,
            version=number,
            sha256=sha,
            artifact_uri=f"file:///artifacts/{model}/{number}/model.tar.gz",
            manifest=manifest.to_json_dict(),
            created_at=utc_now(),
            created_by="tests",
            endpoint_name=endpoint_name(prefix=PREFIX, model=model),
            variant_name=variant_name(version=number),
        )
    )
    if alias is not None:
        registry.set_alias(model=model, alias=alias, version=number, actor="tests")
    return version


def make_key(
    registry: SqliteRegistry, *, models: list[str], admin: bool = False, name: str = "tester"
) -> str:
    _, secret = keys.create_key(registry=registry, name=name, models=models, admin=admin)
    return secret


def digit_request(*, batch: int = 1, value: float = 1.0) -> dict[str, Any]:
    return {
        "inputs": [
            {
                "name": "input",
                "shape": [batch, 1, 8, 8],
                "datatype": "FP32",
                "data": [value] * (batch * 64),
            }
        ]
    }
