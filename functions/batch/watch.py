"""``watch_inputs``: the local stack's bucket notification. ``modelway up`` runs it in a thread,
so that a file dropped under ``{data_dir}/inputs/{model}/{alias-or-version}/`` is scored.

It polls (no extra dependency, works on every filesystem) and fires a file once its size and
modification time held still across one interval, so a file still being copied in is not
read half-written. Each file is fired once per content (see ``local.py``): after a restart
every file is fired again, and the jobs' idempotency turns those into no-ops.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from aws_lambda_powertools import Logger

from functions.batch.events import INPUTS_PREFIX

if TYPE_CHECKING:
    from functions.batch.deps import BatchDeps
    from functions.core.settings import Settings

logger = Logger(service="modelway-batch", child=True)

Signature = tuple[int, int]  # (size, mtime_ns)


def watch_inputs(
    *,
    settings: Settings,
    stop_event: threading.Event,
    interval: float = 1.0,
    deps: BatchDeps | None = None,
) -> None:
    """Score new files under ``inputs/`` until ``stop_event`` is set."""
    from functions.batch.deps import BatchDeps

    if deps is None:
        from functions.core.backends import Backends

        backends = Backends.from_settings(settings)
        deps = BatchDeps(
            settings=settings,
            registry=backends.registry,
            store=backends.store,
            runtime=backends.batch_runtime,
        )
    watcher = InputsWatcher(deps=deps)
    while not stop_event.is_set():
        try:
            watcher.poll()
        except Exception:
            logger.exception("inputs watcher poll failed")
        stop_event.wait(interval)


class InputsWatcher:
    def __init__(self, *, deps: BatchDeps) -> None:
        self.deps = deps
        self._fired: dict[str, Signature] = {}
        self._pending: dict[str, Signature] = {}

    def poll(self) -> list[str]:
        """One pass; returns the keys fired."""
        fired = []
        data_dir = self.deps.settings.data_dir
        present = set()
        for key in self.deps.store.list_objects(prefix=INPUTS_PREFIX):
            name = key.rsplit("/", 1)[-1]
            if name.startswith(".") or name.endswith((".tmp", ".part", "~")):
                continue  # editors' and copiers' temporary files
            present.add(key)
            try:
                stat = data_dir.joinpath(*key.split("/")).stat()
            except OSError:
                continue
            signature = (stat.st_size, stat.st_mtime_ns)
            if self._fired.get(key) == signature:
                continue
            if self._pending.get(key) != signature:
                self._pending[key] = signature  # seen once; fire when it holds still
                continue
            del self._pending[key]
            self._fired[key] = signature
            self._fire(key)
            fired.append(key)
        for seen in (self._fired, self._pending):
            for gone in set(seen) - present:
                del seen[gone]
        return fired

    def _fire(self, key: str) -> None:
        from functions.batch.dispatch import handle_event
        from functions.batch.local import local_object_event

        try:
            event = local_object_event(settings=self.deps.settings, key=key)
            summary = handle_event(event=event, context=None, deps=self.deps)
            logger.info("scored a dropped file", extra={"key": key, "jobs": summary["jobs"]})
        except Exception:
            # The job records the failure; drop the file again (or fix it) to retry.
            logger.exception("scoring a dropped file failed", extra={"key": key})
