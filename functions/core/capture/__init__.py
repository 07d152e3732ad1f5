"""Request capture, shadow traffic, and the comparison report built from them.

- ``records``: one captured request/answer as a JSON line (``captures/{model}/{alias}/{day}/``).
- ``writer``: batches records into objects on a background thread; never blocks a request.
- ``tap``: the router's hook after an answer is ready: samples capture and shadow, and does
  both off the request path.
- ``reader`` / ``compare`` / ``drift`` / ``html``: read captures back into a report (per
  version requests, errors, p50/p99; paired agreement; input drift as PSI) and a web page.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from functions.core.capture.exceptions import InvalidCapture, NoCaptures

if TYPE_CHECKING:
    from functions.core.artifacts.base import ArtifactStore
    from functions.core.registry.base import Registry

__all__ = ["InvalidCapture", "NoCaptures", "compare_alias"]


def compare_alias(
    *, registry: Registry, store: ArtifactStore, model: str, alias: str, since: str | None = None
) -> dict[str, Any]:
    """The comparison report of the alias's captures since ``since`` (``reader.parse_since``).
    Raises ``ModelNotFound`` for an unknown model, ``NoCaptures`` when nothing was captured."""
    from functions.core.capture.compare import build_report
    from functions.core.capture.reader import manifests_for, parse_since, read_captures

    registry.list_versions(model=model)  # an unknown model says so
    start = parse_since(since)
    records = list(read_captures(store, model=model, alias=alias, since=start))
    if not records:
        window = f" since {start}" if start else ""
        raise NoCaptures(f"nothing captured for {model} alias {alias!r}{window}")
    manifests = manifests_for(registry, model=model, versions={r.version for r in records})
    return build_report(records, model=model, alias=alias, manifests=manifests, since=start)
