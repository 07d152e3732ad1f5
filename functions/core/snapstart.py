"""The Lambda init phase, with or without SnapStart.

A function's module builds everything it can at import (``init``), which in Lambda is the
init phase: without SnapStart the first event then costs what a warm one does, and with
SnapStart (``infra``: published versions + an alias) that work is done once, when a version is
published, and every sandbox resumes from the snapshot taken after it.

What a snapshot must not carry into many sandboxes is renewed by the after-restore hooks
registered here: random state (two sandboxes would draw the same canary split), caches whose
age is measured on a monotonic clock that restarts on another host (a cached key could outlive
its TTL, or its revocation), and connections (nothing opens one before the snapshot, see
``functions.core.aws_clients.prime``). The Lambda Python runtime (3.12 and later) provides
``snapshot_restore_py``; elsewhere nothing is ever snapshotted and the hooks are not needed.
"""

from __future__ import annotations

import gc
import os
import random
from collections.abc import Callable

Hook = Callable[[], None]


def in_lambda() -> bool:
    """True inside a Lambda sandbox, where importing a function's module is its init phase."""
    return bool(os.environ.get("AWS_LAMBDA_FUNCTION_NAME"))


def register(*, before_snapshot: Hook | None = None, after_restore: Hook | None = None) -> bool:
    """Register SnapStart runtime hooks; False where the runtime has none (not in Lambda)."""
    try:
        from snapshot_restore_py import (  # type: ignore[import-not-found, unused-ignore]
            register_after_restore,
            register_before_snapshot,
        )
    except ImportError:
        return False
    if before_snapshot is not None:
        register_before_snapshot(before_snapshot)
    if after_restore is not None:
        register_after_restore(after_restore)
    return True


def reseed(rng: random.Random | None = None) -> None:
    """Fresh OS entropy for ``rng`` and the ``random`` module (``secrets`` needs none: it reads
    the OS's generator, which Lambda reseeds on restore)."""
    random.seed()
    if rng is not None:
        rng.seed()


def settle() -> None:
    """End of the init phase: what it built lives as long as the sandbox, so the garbage
    collector stops traversing it (``gc.freeze``). Otherwise every full collection during a
    request walks the whole app, botocore's models included: tens of milliseconds. (No
    ``gc.collect()`` first: it would cost the cold start more than the init phase's few
    cycles of garbage are worth.)"""
    gc.freeze()
