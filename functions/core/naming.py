"""How versions map onto SageMaker names and artifact keys; the model server parses the same."""

from __future__ import annotations

import re

MODEL_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")
ALIAS_NAME_RE = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")


def endpoint_name(*, prefix: str, model: str) -> str:
    """One SageMaker endpoint per model; versions are its production variants."""
    return f"{prefix}-{model}"


def variant_name(*, version: int) -> str:
    return f"v{version}"


def artifact_key(*, prefix: str, model: str, version: int) -> str:
    """``{prefix}{model}/{version}/model.tar.gz``, the same layout in S3 and on disk."""
    return f"{prefix}{model}/{version}/model.tar.gz"
