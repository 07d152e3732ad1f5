"""Progress of long work, reported to whoever asked for it.

Build, package, publish and batch scoring call ``report(step, done=, total=)`` as they go;
by default nothing listens (a Lambda, a server, a library user). A caller that wants to show
progress — the ``modelway`` CLI draws bars on a terminal — installs a callback for the
duration of the work with ``reporting(callback)``. No terminal code lives here or in the code
that reports: the listener decides what to do with a step.

``step`` names what is happening (``"training"``, ``"uploading"``); ``done``/``total`` count
it when it can be counted (epochs, bytes); ``total`` is ``None`` when unknown.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol


class Progress(Protocol):
    def __call__(
        self,
        step: str,
        *,
        done: int | None = None,
        total: int | None = None,
        detail: str | None = None,
    ) -> None: ...


def _ignore(
    step: str, *, done: int | None = None, total: int | None = None, detail: str | None = None
) -> None:
    return None


# One listener per process (a CLI command), seen by every thread the work starts; not a
# ContextVar, which worker threads would not inherit.
_listener: Progress = _ignore
_lock = threading.Lock()


def report(
    step: str, *, done: int | None = None, total: int | None = None, detail: str | None = None
) -> None:
    """Tell the listener, if any, that ``step`` is under way (``done`` of ``total``; ``detail``
    a short note such as a count in other units)."""
    _listener(step, done=done, total=total, detail=detail)


@contextmanager
def reporting(listener: Progress) -> Iterator[None]:
    """Send every ``report`` made inside the block to ``listener``."""
    global _listener
    with _lock:
        previous, _listener = _listener, listener
    try:
        yield
    finally:
        with _lock:
            _listener = previous
