"""A small TTL cache for the router's per-container lookups (keys, aliases, versions).

The clock is passed to every call rather than read inside, so tests move time forward without
sleeping and every entry's age is measured on the one clock the app was built with.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

V = TypeVar("V")


class TTLCache(Generic[V]):
    """Entries live ``ttl`` seconds; the oldest is dropped once ``max_entries`` is reached.

    A ``ttl`` of 0 or less disables caching: every ``get`` misses.
    """

    def __init__(self, *, ttl: float, max_entries: int = 1024) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._entries: dict[Hashable, tuple[float, V]] = {}
        # FastAPI runs sync dependencies in a thread pool, so entries are shared across threads.
        self._lock = threading.Lock()

    def get(self, key: Hashable, *, now: float) -> V | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            expires_at, value = entry
            if now >= expires_at:
                del self._entries[key]
                return None
            return value

    def put(self, key: Hashable, value: V, *, now: float) -> None:
        if self.ttl <= 0:
            return
        with self._lock:
            if key not in self._entries and len(self._entries) >= self.max_entries:
                # dicts keep insertion order: the first key is the oldest written.
                del self._entries[next(iter(self._entries))]
            self._entries[key] = (now + self.ttl, value)

    def get_or_load(self, key: Hashable, load: Callable[[], V], *, now: float) -> V:
        """The cached value, or ``load()``'s (cached). Errors from ``load`` are not cached."""
        value = self.get(key, now=now)
        if value is None:
            value = load()
            self.put(key, value, now=now)
        return value

    def discard_where(self, predicate: Callable[[Hashable, V], bool]) -> None:
        with self._lock:
            for key in [k for k, (_, v) in self._entries.items() if predicate(k, v)]:
                del self._entries[key]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
