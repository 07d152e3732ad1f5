"""Powertools' X-Ray tracer, only where traces go somewhere.

Powertools' ``Tracer`` imports the X-Ray SDK (about 0.15 s) as soon as one is built, even
when it then disables itself. Tracing is on in a Lambda sandbox (the stack turns on active
tracing) unless ``POWERTOOLS_TRACE_DISABLED`` says otherwise, and off everywhere else, where
no tracer is built and the SDK is never imported.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aws_lambda_powertools import Tracer


def enabled() -> bool:
    """Powertools' own rule: in Lambda (not under SAM local or Chalice) and not disabled."""
    from aws_lambda_powertools.shared import constants
    from aws_lambda_powertools.shared.functions import resolve_truthy_env_var_choice

    if resolve_truthy_env_var_choice(env=os.getenv(constants.TRACER_DISABLED_ENV, "false")):
        return False
    if os.getenv(constants.SAM_LOCAL_ENV) or os.getenv(constants.CHALICE_LOCAL_ENV):
        return False
    return bool(os.getenv(constants.LAMBDA_TASK_ROOT_ENV))


def tracer(*, service: str) -> Tracer | None:
    """A tracer for ``service`` where tracing is on; None (nothing imported) where it is off."""
    if not enabled():
        return None
    from aws_lambda_powertools import Tracer

    return Tracer(service=service)
