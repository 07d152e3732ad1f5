"""The deployer contract, and the local no-op."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Literal, Protocol

if TYPE_CHECKING:
    from functions.core.deploy.plan import EndpointPlan
    from functions.core.registry.base import ModelVersion

# What ``apply`` did to the endpoint ("deferred": it was mid-update, left for the next move).
Outcome = Literal["unchanged", "created", "updated", "reweighted", "deferred"]
# The ``Conflict`` code for an endpoint that cannot take a change yet.
ENDPOINT_BUSY = "endpoint_busy"


class Deployer(Protocol):
    def deploy_version(self, *, version: ModelVersion) -> None:
        """Make one version servable on its own (SageMaker: a Model for its artifact).
        Idempotent."""

    def apply(self, *, plan: EndpointPlan, versions: Mapping[int, ModelVersion]) -> Outcome:
        """Make the model's endpoint carry exactly the plan's versions, with its weights.
        Starts the change and returns; raises ``Conflict`` while the endpoint is mid-update."""

    def wait(self, *, model: str) -> None:
        """Block until the model's endpoint is serving its latest configuration (SageMaker:
        then gives its variants their autoscaling)."""

    def live_versions(self, *, model: str) -> frozenset[int] | None:
        """The versions the model's endpoint serves now — not those an update in progress is
        adding: the versions an alias may point at and be answered. None: every version."""

    def ensure_autoscaling(self, *, model: str) -> bool:
        """Give every variant of the model's endpoint its autoscaling if the endpoint is
        serving (True); one that is missing or changing is left for later (False).
        Idempotent. Called after ``wait`` and when SageMaker reports the endpoint
        ``InService`` (``functions.endpoint_events``)."""


class NoopDeployer:
    """The local stack: the model server serves every version on disk, nothing to deploy."""

    def deploy_version(self, *, version: ModelVersion) -> None:
        return None

    def apply(self, *, plan: EndpointPlan, versions: Mapping[int, ModelVersion]) -> Outcome:
        return "unchanged"

    def wait(self, *, model: str) -> None:
        return None

    def live_versions(self, *, model: str) -> frozenset[int] | None:
        return None

    def ensure_autoscaling(self, *, model: str) -> bool:
        return False
