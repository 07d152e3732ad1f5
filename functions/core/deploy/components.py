"""SageMaker hosting with inference components (``hosting = "components"``): one endpoint and
one instance fleet per model, each version an inference component packed onto that fleet.

With production variants (``sagemaker.py``) every version an endpoint keeps (alias targets,
rollback targets, the newest) has its own instances at the environment's minimum count: a
canary at 10% costs a whole fleet. Here a version is a component with its own compute
requirements (``component_accelerators`` and ``component_memory_mb`` per copy) and copy
count; SageMaker packs copies onto the fleet's instances and its managed instance scaling adds
and removes instances as copies need them, down to ``min_instance_count`` (0 allowed).

Names: the endpoint ``{prefix}-{model}`` (one production variant, ``fleet``), its
configuration ``{prefix}-{model}-{hash}`` (the hash covers the fleet's settings), a version's
component ``{endpoint}-v{N}`` (``naming.component_name``; the runtime client invokes it by
that name) running the version's SageMaker Model ``{prefix}-{model}-v{N}``.

What ``apply`` does with a plan (``plan.py``):

- no endpoint yet: ``CreateEndpoint`` with the fleet; components need it ``InService``, so
  they come with the next reconcile (the endpoint's ``IN_SERVICE`` event, then the schedule);
- the fleet's settings changed (instance type, bounds): ``UpdateEndpoint`` with deployment
  guardrails, SageMaker's blue/green for the fleet itself, with auto-rollback on the model's
  alarm;
- each planned version without a component: ``CreateInferenceComponent``, with as many copies
  as it must keep: ``component_min_copies`` if it is ``hot`` (an alias, canary or pending move
  points at it), else 0;
- a component that must keep more copies than it has (a rollback target becoming hot again):
  ``UpdateInferenceComponentRuntimeConfig``; one whose per-copy requirements are no longer
  the environment's: ``UpdateInferenceComponent`` (SageMaker replaces its copies, rolling);
- each component ``InService`` gets its autoscaling (``component_scaling.py``), its minimum
  that floor, so a version no alias points at scales in to zero and back out on demand;
- components of versions no longer planned: autoscaling off, then ``DeleteInferenceComponent``.

Traffic splitting stays in the router: an alias's canary is the router choosing which
component to call, so there are no endpoint weights to keep. A version is live (an alias may
move to it) when its component is ``InService`` with at least one copy running.

SageMaker sends no EventBridge event when a component changes state, so the endpoint-events
function also runs on a schedule (``rollout.reconcile``): it applies the plan again (creating
what the endpoint now has room for, registering autoscaling) and makes the pending moves whose
targets now serve.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from functions.core.deploy.base import Outcome
from functions.core.deploy.sagemaker import (
    SageMakerDeployer,
    already_exists,
    not_found,
)
from functions.core.naming import component_name, version_of_component

if TYPE_CHECKING:
    from functions.core.deploy.component_scaling import ComponentAutoscaling
    from functions.core.deploy.plan import EndpointPlan
    from functions.core.registry.base import ModelVersion
    from functions.core.settings import Settings

FLEET_VARIANT = "fleet"
# Component statuses a change may be made in; the others (Creating, Updating, Deleting) are
# left for the next reconcile.
IN_SERVICE = "InService"
FAILED = "Failed"
CHANGING = frozenset({"Creating", "Updating"})
# How often ``wait`` (the CLI) looks at components still changing.
WAIT_POLL_SECONDS = 30


class ComponentDeployer(SageMakerDeployer):
    def __init__(
        self,
        *,
        accelerators: int,
        memory_mb: int,
        min_copies: int,
        min_instances: int,
        max_instances: int,
        scaling: ComponentAutoscaling | None = None,
        **kwargs: Any,
    ) -> None:
        # Variant autoscaling does not apply: the fleet scales itself (managed scaling).
        kwargs["autoscaling"] = None
        super().__init__(**kwargs)
        if not 0 <= min_instances <= max_instances or max_instances < 1:
            raise ValueError(
                f"components hosting needs 0 <= min_instance_count ({min_instances}) <= "
                f"max_instance_count ({max_instances}), and at least 1 at most"
            )
        self._accelerators = accelerators
        self._memory_mb = memory_mb
        self._min_copies = min_copies
        self._min_instances = min_instances
        self._max_instances = max_instances
        self._scaling = scaling

    @classmethod
    def from_settings(cls, settings: Settings) -> ComponentDeployer:
        from functions.core.deploy.component_scaling import ComponentAutoscaling

        return cls(
            **cls.options_from(settings),
            accelerators=settings.component_accelerators,
            memory_mb=settings.component_memory_mb,
            min_copies=settings.component_min_copies,
            min_instances=settings.min_instance_count,
            max_instances=settings.max_instance_count,
            scaling=ComponentAutoscaling.from_settings(settings),
        )

    # Names ----------------------------------------------------------------------------
    def component_name(self, *, model: str, variant: str) -> str:
        return component_name(endpoint=self.endpoint_name(model=model), variant=variant)

    # Deployer -------------------------------------------------------------------------
    def apply(self, *, plan: EndpointPlan, versions: Mapping[int, ModelVersion]) -> Outcome:
        if not plan.versions:
            return "unchanged"  # nothing servable: leave whatever runs alone
        endpoint = self.endpoint_name(model=plan.model)
        fleet = self.fleet_variant()
        current = self._describe_endpoint(endpoint)
        if current is None:
            config = self._create_config(plan.model, [fleet], own_role=True)
            self._create_endpoint(model=plan.model, config=config)
            return "created"
        status = current.get("EndpointStatus")
        if status != IN_SERVICE:
            raise self._busy(endpoint, status)
        running = self._sm.describe_endpoint_config(
            EndpointConfigName=current["EndpointConfigName"]
        )["ProductionVariants"]
        if [_fleet_shape(v) for v in running] != [_fleet_shape(fleet)]:
            config = self._create_config(plan.model, [fleet], own_role=True)
            self._sm.update_endpoint(
                EndpointName=endpoint,
                EndpointConfigName=config,
                DeploymentConfig=self.deployment_config(model=plan.model),
            )
            return "updated"
        changed = self._sync_components(plan=plan, versions=versions, endpoint=endpoint)
        return "updated" if changed else "unchanged"

    def wait(self, *, model: str) -> None:
        """The endpoint ``InService`` (``SageMakerDeployer.wait``), then every component on it
        done creating or updating (a copy loads its model: minutes)."""
        super().wait(model=model)
        endpoint = self.endpoint_name(model=model)
        deadline = time.monotonic() + self._max_execution
        while True:
            busy = [
                name
                for name, summary in self._components(endpoint).items()
                if summary.get("InferenceComponentStatus") in CHANGING
            ]
            if not busy:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"inference components still changing: {', '.join(busy)}")
            time.sleep(WAIT_POLL_SECONDS)

    def live_versions(self, *, model: str) -> frozenset[int] | None:
        """Versions whose component is ``InService`` with a copy running: an alias moved to
        one answers at once (one at zero copies answers 503 until a copy starts)."""
        endpoint = self.endpoint_name(model=model)
        current = self._describe_endpoint(endpoint)
        if current is None or current.get("EndpointStatus") != IN_SERVICE:
            return frozenset()
        live: set[int] = set()
        for name, summary in self._components(endpoint).items():
            number = version_of_component(name)
            if number is None or summary.get("InferenceComponentStatus") != IN_SERVICE:
                continue
            described = self._sm.describe_inference_component(InferenceComponentName=name)
            if int(described.get("RuntimeConfig", {}).get("CurrentCopyCount", 0)) >= 1:
                live.add(number)
        return frozenset(live)

    def ensure_autoscaling(self, *, model: str) -> bool:
        """The fleet scales itself (managed instance scaling) and components get theirs in
        ``apply``, which needs the plan: True when the endpoint is ``InService``."""
        current = self._describe_endpoint(self.endpoint_name(model=model))
        return current is not None and current.get("EndpointStatus") == IN_SERVICE

    # Pieces ---------------------------------------------------------------------------
    def fleet_variant(self) -> dict[str, Any]:
        """The endpoint's one production variant: instances only, no model (components
        bring theirs); SageMaker scales its instance count within the bounds."""
        return {
            "VariantName": FLEET_VARIANT,
            "InstanceType": self._instance_type,
            "InitialInstanceCount": max(self._instance_count, 1),
            "ManagedInstanceScaling": {
                "Status": "ENABLED",
                "MinInstanceCount": self._min_instances,
                "MaxInstanceCount": self._max_instances,
            },
            # Requests go to the copy with the fewest in flight, not a random one.
            "RoutingConfig": {"RoutingStrategy": "LEAST_OUTSTANDING_REQUESTS"},
        }

    def requirements(self) -> dict[str, Any]:
        """What one copy of a version reserves on an instance."""
        needs: dict[str, Any] = {"MinMemoryRequiredInMb": self._memory_mb}
        if self._accelerators:
            needs["NumberOfAcceleratorDevicesRequired"] = float(self._accelerators)
        return needs

    def _sync_components(
        self, *, plan: EndpointPlan, versions: Mapping[int, ModelVersion], endpoint: str
    ) -> bool:
        found = self._components(endpoint)
        wanted = {
            self.component_name(model=plan.model, variant=versions[v].variant_name): v
            for v in plan.versions
        }
        changed = False
        floors: dict[str, int] = {}
        for name, number in wanted.items():
            floor = self._min_copies if number in plan.hot else 0
            summary = found.get(name)
            if summary is None:
                self._create_component(
                    name=name, endpoint=endpoint, version=versions[number], copies=floor
                )
                changed = True
                continue
            if summary.get("InferenceComponentStatus") != IN_SERVICE:
                continue  # Creating or Updating: the next reconcile picks it up
            described = self._sm.describe_inference_component(InferenceComponentName=name)
            needs = described.get("Specification", {}).get("ComputeResourceRequirements", {})
            if not _same_requirements(needs, self.requirements()):
                # The environment's per-copy requirements changed: SageMaker replaces the
                # copies in a rolling update, the component serving throughout.
                self._sm.update_inference_component(
                    InferenceComponentName=name,
                    Specification={
                        "ModelName": self.model_name(model=plan.model, version=number),
                        "ComputeResourceRequirements": self.requirements(),
                    },
                )
                changed = True
                continue
            desired = int(described.get("RuntimeConfig", {}).get("DesiredCopyCount", 0))
            if desired < floor:
                self._sm.update_inference_component_runtime_config(
                    InferenceComponentName=name, DesiredRuntimeConfig={"CopyCount": floor}
                )
                changed = True
                continue  # Updating now; its autoscaling follows once it is InService
            floors[name] = floor
        if self._scaling is not None:
            self._scaling.sync(floors=floors)
        gone = [
            name
            for name, summary in found.items()
            if name not in wanted
            and version_of_component(name) is not None
            and summary.get("InferenceComponentStatus") in (IN_SERVICE, FAILED)
        ]
        if gone and self._scaling is not None:
            self._scaling.remove(components=gone)
        for name in gone:
            try:
                self._sm.delete_inference_component(InferenceComponentName=name)
            except Exception as exc:
                if not not_found(exc):  # a racing reconcile deleted it first
                    raise
            changed = True
        return changed

    def _create_component(
        self, *, name: str, endpoint: str, version: ModelVersion, copies: int
    ) -> None:
        try:
            self._sm.create_inference_component(
                InferenceComponentName=name,
                EndpointName=endpoint,
                VariantName=FLEET_VARIANT,
                Specification={
                    "ModelName": self.model_name(model=version.model, version=version.version),
                    "ComputeResourceRequirements": self.requirements(),
                },
                RuntimeConfig={"CopyCount": copies},
                Tags=[
                    {"Key": "modelway:model", "Value": version.model},
                    {"Key": "modelway:version", "Value": str(version.version)},
                ],
            )
        except Exception as exc:
            if not already_exists(exc):  # a racing reconcile created it first
                raise

    def _components(self, endpoint: str) -> dict[str, dict[str, Any]]:
        """The endpoint's components by name (with their status)."""
        found: dict[str, dict[str, Any]] = {}
        pages = self._sm.get_paginator("list_inference_components").paginate(
            EndpointNameEquals=endpoint
        )
        for page in pages:
            for summary in page.get("InferenceComponents", []):
                found[str(summary["InferenceComponentName"])] = summary
        return found


def _same_requirements(found: Mapping[str, Any], wanted: Mapping[str, Any]) -> bool:
    keys = ("MinMemoryRequiredInMb", "NumberOfAcceleratorDevicesRequired")
    return all(float(found.get(k) or 0) == float(wanted.get(k) or 0) for k in keys)


def _fleet_shape(variant: Mapping[str, Any]) -> tuple[Any, ...]:
    scaling = variant.get("ManagedInstanceScaling") or {}
    return (
        variant.get("VariantName"),
        variant.get("InstanceType"),
        scaling.get("Status"),
        scaling.get("MinInstanceCount"),
        scaling.get("MaxInstanceCount"),
    )
