"""How versions map onto SageMaker names and artifact keys; the model server parses the same.

Names are checked with ``is_model_name`` / ``is_alias_name`` (a full match: with ``re.match``
a pattern ending in ``$`` also accepts a trailing newline). The ``*_PATTERN`` strings are the
same rules for JSON Schema / OpenAPI, where ``$`` means the end of the text.
"""

from __future__ import annotations

import hashlib
import re

# SageMaker names match ^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}: no leading or trailing '-'. A model
# name ends every SageMaker name of its versions, so it follows that rule (lower case, at most
# 40 characters, leaving room for the environment's prefix).
_MODEL_NAME = r"[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?"
_ALIAS_NAME = r"[a-z][a-z0-9_-]{0,31}"
_TENANT_NAME = r"[a-z0-9][a-z0-9_-]{0,63}"
# Environment names carry no '-': the environment is the second '-'-separated part of every
# name (``modelway-{env}-…``), so the pattern ``modelway-prod-*`` cannot also match an
# environment ``prod-eu``'s names.
_ENV_NAME = r"[a-z][a-z0-9]{0,15}"
ENV_NAME_PATTERN = f"^{_ENV_NAME}$"
MODEL_NAME_PATTERN = f"^{_MODEL_NAME}$"
ALIAS_NAME_PATTERN = f"^{_ALIAS_NAME}$"
TENANT_NAME_PATTERN = f"^{_TENANT_NAME}$"
# A key's model scope: a model name, or "*" for every model.
MODEL_SCOPE_PATTERN = rf"^(\*|{_MODEL_NAME})$"
# ``\Z``, not ``$``: safe even under ``re.match``.
MODEL_NAME_RE = re.compile(rf"{_MODEL_NAME}\Z")
ALIAS_NAME_RE = re.compile(rf"{_ALIAS_NAME}\Z")
TENANT_NAME_RE = re.compile(rf"{_TENANT_NAME}\Z")
ENV_NAME_RE = re.compile(rf"{_ENV_NAME}\Z")
# Version numbers are positive and fit a signed 64-bit integer (SQLite's INTEGER; DynamoDB
# and SageMaker names hold them too): a larger number names no version and never will.
MAX_VERSION = 2**63 - 1


def is_model_name(value: str) -> bool:
    return MODEL_NAME_RE.fullmatch(value) is not None


def is_alias_name(value: str) -> bool:
    return ALIAS_NAME_RE.fullmatch(value) is not None


def is_tenant_name(value: str) -> bool:
    return TENANT_NAME_RE.fullmatch(value) is not None


def is_version_number(value: int) -> bool:
    return 1 <= value <= MAX_VERSION


def endpoint_name(*, prefix: str, model: str) -> str:
    """One SageMaker endpoint per model; versions are its production variants."""
    return f"{prefix}-{model}"


def variant_name(*, version: int) -> str:
    return f"v{version}"


# SageMaker names (models, endpoints, configurations, inference components) are at most 63.
MAX_SAGEMAKER_NAME = 63


def fit_name(name: str, *, suffix: str = "") -> str:
    """``name + suffix`` within SageMaker's 63 characters: a long ``name`` is cut and given a
    hash of itself (so two long names stay distinct); ``suffix`` is always kept whole."""
    room = MAX_SAGEMAKER_NAME - len(suffix)
    if len(name) <= room:
        return f"{name}{suffix}"
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[: room - 9].rstrip('-')}-{digest}{suffix}"


def component_name(*, endpoint: str, variant: str) -> str:
    """A version's inference component on its model's endpoint (``components`` hosting):
    ``{endpoint}-v{N}``. The deployer creates it and the runtime client invokes it by this
    name; it always ends in ``-v{N}``, so the version can be read back from it."""
    return fit_name(endpoint, suffix=f"-{variant}")


def version_of_component(name: str) -> int | None:
    """The version number a ``component_name`` ends with, or None for another name."""
    head, _, tail = name.rpartition("-v")
    return int(tail) if head and tail.isdigit() and tail[0] != "0" else None


def artifact_key(*, prefix: str, model: str, version: int) -> str:
    """``{prefix}{model}/{version}/model.tar.gz``, the same layout in S3 and on disk."""
    return f"{prefix}{model}/{version}/model.tar.gz"
