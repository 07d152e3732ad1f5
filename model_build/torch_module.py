"""The ``nn.Module`` a user names for ``modelway package --torch MODULE:CALLABLE``: imported
from their own code and built here, so torch stays inside ``model_build``."""

from __future__ import annotations

import importlib
import os
import sys
from typing import TYPE_CHECKING

from model_build.exceptions import ExportFailed

if TYPE_CHECKING:
    import torch


def load_torch_module(*, module_name: str, attribute: str) -> torch.nn.Module:
    """Import ``module_name`` and return ``attribute`` (a dotted path) if it is an ``nn.Module``,
    or what calling it returns, which must be one. Every failure is an ``ExportFailed``."""
    import torch

    spec = f"{module_name}:{attribute}"
    # A console script does not put the current directory on sys.path as `python -m` does;
    # the user's own module most often lives right there.
    if os.getcwd() not in sys.path:
        sys.path.append(os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # ImportError, or anything the user's module raises on import
        raise ExportFailed(f"cannot import {module_name}: {type(exc).__name__}: {exc}") from exc
    target = module
    for part in attribute.split("."):
        if not hasattr(target, part):
            raise ExportFailed(f"{module_name} has no attribute {attribute!r}")
        target = getattr(target, part)
    if isinstance(target, torch.nn.Module):
        return target
    if not callable(target):
        raise ExportFailed(f"{spec} is neither a callable nor a torch.nn.Module")
    try:
        built = target()
    except Exception as exc:
        raise ExportFailed(f"{spec}() raised {type(exc).__name__}: {exc}") from exc
    if not isinstance(built, torch.nn.Module):
        raise ExportFailed(f"{spec}() returned a {type(built).__name__}, not a torch.nn.Module")
    return built
