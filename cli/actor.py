"""Who the registry records as the author of a publish, a move or a decision."""

from __future__ import annotations

import getpass
import os


def current_actor() -> str:
    """Who the registry records for a move: $MODELWAY_ACTOR, else the OS user."""
    actor = os.environ.get("MODELWAY_ACTOR")
    if actor:
        return actor
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (some containers)
        return "unknown"
