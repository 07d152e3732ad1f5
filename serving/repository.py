"""Local multi-version mode: every version under ``{artifacts_dir}/{model}/{version}/model.tar.gz``
(the artifact store's layout), loaded lazily on first use.

The directory is the source of truth: a miss (unknown model or version, or an archive that
is gone) rescans it, so a version published after start is served without a restart and a
deleted one is unloaded. A request naming no version rescans too: it gets the highest now.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
import threading
from pathlib import Path

from serving.artifact import ARCHIVE_NAME
from serving.config import ServingConfig
from serving.exceptions import ServingError, UnknownTarget
from serving.model import OnnxModel

log = logging.getLogger("serving")

# The platform's model names (functions/core/naming.py); anything else, ``..`` included,
# can never name a directory here.
MODEL_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")

_Key = tuple[str, int]


class LocalRepository:
    def __init__(self, *, artifacts_dir: Path, config: ServingConfig) -> None:
        self.artifacts_dir = artifacts_dir
        self._config = config
        self._lock = threading.Lock()
        self._on_disk: dict[str, dict[int, Path]] = {}
        self._models: dict[_Key, OnnxModel] = {}
        self._loading: dict[_Key, threading.Lock] = {}
        # A broken archive is not re-extracted on every request: its error is remembered
        # until the file changes.
        self._failed: dict[_Key, tuple[tuple[int, int, int], ServingError]] = {}
        self._scratch = Path(tempfile.mkdtemp(prefix="modelway-serving-"))

    # -- discovery ----------------------------------------------------------------------

    def scan(self, model: str) -> dict[int, Path]:
        """The versions of ``model`` on disk now; unloads versions that disappeared."""
        found: dict[int, Path] = {}
        if MODEL_NAME_RE.fullmatch(model):
            try:
                with os.scandir(self.artifacts_dir / model) as entries:
                    for entry in entries:
                        archive = Path(entry.path) / ARCHIVE_NAME
                        if entry.name.isdigit() and archive.is_file():
                            found[int(entry.name)] = archive
            except (FileNotFoundError, NotADirectoryError):
                pass
        with self._lock:
            self._on_disk[model] = found
            gone = [k for k in self._models if k[0] == model and k[1] not in found]
            evicted = [self._models.pop(k) for k in gone]
        for old in evicted:
            log.info("unloading %s/%s: its artifact is gone", old.name, old.version)
            old.close(wait=False)
        return found

    def resolve(self, *, model: str, version: int | None, endpoint: str) -> int:
        """The version to serve: the one asked for, or the highest on disk when none is."""
        if version is None:
            versions = self.scan(model)
        else:
            versions = self._on_disk.get(model, {})
            archive = versions.get(version)
            # One stat per request keeps the directory the truth: a deleted version stops
            # being served at once, not at the next rescan.
            if archive is None or not archive.is_file():
                versions = self.scan(model)
        if not versions:
            raise UnknownTarget(f"Endpoint {endpoint} not found.")
        if version is None:
            return max(versions)
        if version not in versions:
            raise UnknownTarget(f"Variant v{version} not found for endpoint {endpoint}.")
        return version

    # -- loading ------------------------------------------------------------------------

    def loaded(self, *, model: str, version: int) -> OnnxModel | None:
        return self._models.get((model, version))

    def load(self, *, model: str, version: int) -> OnnxModel:
        """Blocking (extracts and builds a session): call it off the event loop."""
        key = (model, version)
        with self._lock:
            lock = self._loading.setdefault(key, threading.Lock())
        with lock:  # concurrent first requests load the version once
            existing = self._models.get(key)
            if existing is not None:
                return existing
            archive = self._on_disk.get(model, {}).get(version)
            if archive is None:
                raise UnknownTarget(f"Variant v{version} not found for model {model}.")
            try:
                stat = archive.stat()
            except OSError as exc:
                raise UnknownTarget(f"Variant v{version} not found for model {model}.") from exc
            # A replaced file (atomic rename) has a new inode even if its mtime is old.
            identity = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
            failed = self._failed.get(key)
            if failed is not None and failed[0] == identity:
                raise failed[1]
            try:
                loaded = OnnxModel.from_source(
                    archive,
                    config=self._config,
                    name=model,
                    version=str(version),
                    scratch_parent=self._scratch,
                )
            except ServingError as exc:
                log.error("cannot load %s/%s: %s", model, version, exc.message)
                self._failed[key] = (identity, exc)
                raise
            except Exception as exc:  # onnxruntime refusing the graph, mostly
                log.exception("cannot load %s/%s", model, version)
                error = ServingError(f"cannot load {model}/{version}: {exc}")
                self._failed[key] = (identity, error)
                raise error from exc
            with self._lock:
                self._models[key] = loaded
                self._failed.pop(key, None)
            log.info("loaded %s/%s (batchable=%s)", model, version, loaded.signature.batchable)
            return loaded

    def models(self) -> list[OnnxModel]:
        with self._lock:
            return list(self._models.values())

    def close(self) -> None:
        with self._lock:
            models = list(self._models.values())
            self._models.clear()
        for loaded in models:
            loaded.close()
        shutil.rmtree(self._scratch, ignore_errors=True)
