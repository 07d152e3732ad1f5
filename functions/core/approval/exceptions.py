from __future__ import annotations

from functions.core.exceptions import Conflict


class NotApproved(Conflict):
    """An alias move to a version this environment's approval gate has not passed."""

    code = "not_approved"


class SelfApproval(Conflict):
    """The publisher of a version tried to approve it where two people are required."""

    code = "self_approval"
