"""The registry on one SQLite file: the local backend, shared by the router, the CLI and tests.

One module per concern, as in ``functions.core.registry.dynamodb``:

- ``tables``: the tables (schema, columns added since) and their codec (rows <-> dataclasses);
- ``connection``: the file, per-thread connections in WAL mode, and the write transaction
  every part uses;
- ``versions``, ``aliases``, ``approvals``, ``keys``, ``jobs``: the registry's parts, one per
  narrow store protocol of ``functions.core.registry.base``.
"""

from __future__ import annotations

from functions.core.registry.sqlite.aliases import AliasesPart
from functions.core.registry.sqlite.approvals import ApprovalsPart
from functions.core.registry.sqlite.jobs import JobsPart
from functions.core.registry.sqlite.keys import KeysPart
from functions.core.registry.sqlite.versions import VersionsPart

__all__ = ["SqliteRegistry"]


class SqliteRegistry(VersionsPart, AliasesPart, ApprovalsPart, KeysPart, JobsPart):
    """The whole ``Registry`` on one SQLite file (``path``)."""
