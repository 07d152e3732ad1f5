"""The autoscaling every production variant of a model's endpoint gets: an Application Auto
Scaling target (bounds from settings) and a target-tracking policy on invocations per instance.

SageMaker's rules for endpoints that use autoscaling ("Update endpoints that use auto scaling"
in the SageMaker developer guide), and what ``SageMakerDeployer`` does about each:

- an ``UpdateEndpoint`` that removes a variant registered as a scalable target, or changes its
  instance type, fails. The deployer deregisters such variants (their policy, then the target)
  before it calls ``UpdateEndpoint``: ``sync(drop=...)``;
- changing the model of a registered variant, or adding variants, is allowed, so the variants
  an update keeps stay registered through it;
- a variant is registered once the endpoint carrying it is ``InService`` (the guide's order:
  update, wait for ``InService``, then register). A Lambda cannot wait minutes for a GPU fleet,
  so registration happens wherever the deployer finds the endpoint ``InService``: after
  ``wait`` (the CLI waits), when SageMaker reports the endpoint ``IN_SERVICE`` (EventBridge →
  the endpoint-events function, ``functions.endpoint_events``: what the router's moves rely
  on), and at the start of every ``apply``. Until then a new variant serves at its initial
  instance count.

``RegisterScalableTarget`` and ``PutScalingPolicy`` are upserts; ``sync`` reads first and writes
only what differs, so a settings change updates bounds and policies and an unchanged endpoint
costs two reads.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING, Any

from functions.core.aws_clients import LazyClient

if TYPE_CHECKING:
    from functions.core.settings import Settings

NAMESPACE = "sagemaker"
DIMENSION = "sagemaker:variant:DesiredInstanceCount"
METRIC = "SageMakerVariantInvocationsPerInstance"
POLICY_TYPE = "TargetTrackingScaling"


def resource_id(*, endpoint: str, variant: str) -> str:
    return f"endpoint/{endpoint}/variant/{variant}"


def policy_name(*, endpoint: str, variant: str) -> str:
    # One name per variant, so a describe can ask for exactly this endpoint's policies.
    return f"{endpoint}-{variant}-invocations-per-instance"


class VariantAutoscaling:
    def __init__(
        self,
        *,
        min_capacity: int,
        max_capacity: int,
        target_invocations_per_instance: int,
        scale_in_cooldown_seconds: int,
        scale_out_cooldown_seconds: int,
        region: str | None = None,
        client: Any = None,
    ) -> None:
        if not 1 <= min_capacity <= max_capacity:
            raise ValueError(
                f"autoscaling needs 1 <= min_instance_count ({min_capacity}) <= "
                f"max_instance_count ({max_capacity})"
            )
        self.min_capacity = min_capacity
        self.max_capacity = max_capacity
        self.target_invocations_per_instance = target_invocations_per_instance
        self.scale_in_cooldown_seconds = scale_in_cooldown_seconds
        self.scale_out_cooldown_seconds = scale_out_cooldown_seconds
        self._client = LazyClient("application-autoscaling", region=region, client=client)

    @classmethod
    def from_settings(cls, settings: Settings) -> VariantAutoscaling:
        return cls(
            min_capacity=settings.min_instance_count,
            max_capacity=settings.max_instance_count,
            target_invocations_per_instance=settings.target_invocations_per_instance,
            scale_in_cooldown_seconds=settings.scale_in_cooldown_seconds,
            scale_out_cooldown_seconds=settings.scale_out_cooldown_seconds,
            region=settings.region,
        )

    @property
    def _aas(self) -> Any:
        return self._client.get()

    def policy_configuration(self) -> dict[str, Any]:
        return {
            "TargetValue": float(self.target_invocations_per_instance),
            "PredefinedMetricSpecification": {"PredefinedMetricType": METRIC},
            "ScaleInCooldown": self.scale_in_cooldown_seconds,
            "ScaleOutCooldown": self.scale_out_cooldown_seconds,
        }

    def sync(self, *, endpoint: str, keep: Collection[str], drop: Collection[str] = ()) -> None:
        """Gives every variant in ``keep`` its scalable target and policy, and takes them off
        every variant in ``drop``. Call it only while the endpoint is ``InService``."""
        names = sorted({*keep, *drop})
        if not names:
            return
        # An endpoint has at most 10 production variants, well inside the 50 ids and names
        # one describe takes.
        targets = self._targets(endpoint=endpoint, variants=names)
        policies = self._policies(endpoint=endpoint, variants=names)
        for variant in sorted(set(drop) - set(keep)):
            if variant in targets:
                self._deregister(endpoint=endpoint, variant=variant, policy=variant in policies)
        wanted_policy = self.policy_configuration()
        for variant in sorted(set(keep)):
            rid = resource_id(endpoint=endpoint, variant=variant)
            target = targets.get(variant)
            if target is None or (target.get("MinCapacity"), target.get("MaxCapacity")) != (
                self.min_capacity,
                self.max_capacity,
            ):
                self._aas.register_scalable_target(
                    ServiceNamespace=NAMESPACE,
                    ResourceId=rid,
                    ScalableDimension=DIMENSION,
                    MinCapacity=self.min_capacity,
                    MaxCapacity=self.max_capacity,
                )
            policy = policies.get(variant)
            if policy is None or not same_tracking(policy, wanted_policy, metric=METRIC):
                self._aas.put_scaling_policy(
                    PolicyName=policy_name(endpoint=endpoint, variant=variant),
                    ServiceNamespace=NAMESPACE,
                    ResourceId=rid,
                    ScalableDimension=DIMENSION,
                    PolicyType=POLICY_TYPE,
                    TargetTrackingScalingPolicyConfiguration=wanted_policy,
                )

    # Pieces ---------------------------------------------------------------------------
    def _targets(self, *, endpoint: str, variants: list[str]) -> dict[str, dict[str, Any]]:
        ids = {resource_id(endpoint=endpoint, variant=v): v for v in variants}
        found: dict[str, dict[str, Any]] = {}
        pages = self._aas.get_paginator("describe_scalable_targets").paginate(
            ServiceNamespace=NAMESPACE, ResourceIds=list(ids), ScalableDimension=DIMENSION
        )
        for page in pages:
            for target in page.get("ScalableTargets", []):
                variant = ids.get(target.get("ResourceId", ""))
                if variant is not None and target.get("ScalableDimension") == DIMENSION:
                    found[variant] = target
        return found

    def _policies(self, *, endpoint: str, variants: list[str]) -> dict[str, dict[str, Any]]:
        wanted = {
            (
                resource_id(endpoint=endpoint, variant=v),
                policy_name(endpoint=endpoint, variant=v),
            ): v
            for v in variants
        }
        found: dict[str, dict[str, Any]] = {}
        pages = self._aas.get_paginator("describe_scaling_policies").paginate(
            ServiceNamespace=NAMESPACE,
            PolicyNames=[name for _, name in wanted],
            ScalableDimension=DIMENSION,
        )
        for page in pages:
            for policy in page.get("ScalingPolicies", []):
                # Matched exactly here: the filters above narrow the answer, not define it.
                variant = wanted.get((policy.get("ResourceId", ""), policy.get("PolicyName", "")))
                if variant is not None:
                    found[variant] = policy
        return found

    def _deregister(self, *, endpoint: str, variant: str, policy: bool) -> None:
        rid = resource_id(endpoint=endpoint, variant=variant)
        # The guide's order: delete the variant's scaling policies, then deregister it.
        if policy:
            ignore_missing(
                self._aas.delete_scaling_policy,
                PolicyName=policy_name(endpoint=endpoint, variant=variant),
                ServiceNamespace=NAMESPACE,
                ResourceId=rid,
                ScalableDimension=DIMENSION,
            )
        ignore_missing(
            self._aas.deregister_scalable_target,
            ServiceNamespace=NAMESPACE,
            ResourceId=rid,
            ScalableDimension=DIMENSION,
        )


def same_tracking(found: Mapping[str, Any], wanted: Mapping[str, Any], *, metric: str) -> bool:
    """Whether a described target-tracking policy is ``wanted`` (a configuration as
    ``PutScalingPolicy`` takes it) on the predefined ``metric``."""
    if found.get("PolicyType") != POLICY_TYPE:
        return False
    config = found.get("TargetTrackingScalingPolicyConfiguration") or {}
    return (
        math.isclose(float(config.get("TargetValue", math.nan)), wanted["TargetValue"])
        and config.get("PredefinedMetricSpecification", {}).get("PredefinedMetricType") == metric
        and config.get("ScaleInCooldown") == wanted["ScaleInCooldown"]
        and config.get("ScaleOutCooldown") == wanted["ScaleOutCooldown"]
        and not config.get("DisableScaleIn", False)
    )


def ignore_missing(call: Any, **params: Any) -> None:
    """A racing deployer may have removed it first: gone is what was wanted."""
    try:
        call(**params)
    except Exception as exc:
        response = getattr(exc, "response", None)
        code = response.get("Error", {}).get("Code") if isinstance(response, dict) else None
        if code != "ObjectNotFoundException":
            raise
