"""The autoscaling every inference component gets (``components`` hosting), as SageMaker
documents it in "Scale an endpoint to zero instances":

- a scalable target on the component's copy count
  (``sagemaker:inference-component:DesiredCopyCount``), its minimum the copies the version
  must keep (0 when no alias points at it, so it scales in to zero) and its maximum
  ``max_copies``;
- a target-tracking policy on concurrent requests per copy (the high-resolution metric, so
  scale-out reacts in seconds, not minutes), which also scales in, down to that minimum;
- the scale-from-zero trigger, which target tracking cannot be (a component at zero copies
  has no per-copy metric): a step-scaling policy adding one copy, run by a CloudWatch alarm on
  the component's ``NoCapacityInvocationFailures`` (requests refused for want of a copy).

SageMaker's managed instance scaling (the endpoint's fleet, ``components.py``) then adds or
removes instances as copies need them. Like ``VariantAutoscaling``, ``sync`` reads first and
writes only what differs: it runs on every reconcile of the model.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING, Any

from functions.core.aws_clients import LazyClient
from functions.core.deploy.autoscaling import ignore_missing, same_tracking

if TYPE_CHECKING:
    from functions.core.settings import Settings

NAMESPACE = "sagemaker"
DIMENSION = "sagemaker:inference-component:DesiredCopyCount"
METRIC = "SageMakerInferenceComponentConcurrentRequestsPerCopyHighResolution"
NO_CAPACITY_METRIC = "NoCapacityInvocationFailures"
# Seconds between two scale-from-zero steps: one copy, then target tracking takes over.
FROM_ZERO_COOLDOWN_SECONDS = 60


def resource_id(component: str) -> str:
    return f"inference-component/{component}"


def tracking_policy_name(component: str) -> str:
    return f"{component}-concurrency"


def from_zero_policy_name(component: str) -> str:
    return f"{component}-from-zero"


def from_zero_alarm_name(component: str) -> str:
    # The component's name starts with the environment's prefix: the stack grants alarms so.
    return f"{component}-no-capacity"


class ComponentAutoscaling:
    def __init__(
        self,
        *,
        max_copies: int,
        target_concurrency: int,
        scale_in_cooldown_seconds: int,
        scale_out_cooldown_seconds: int,
        region: str | None = None,
        client: Any = None,
        cloudwatch: Any = None,
    ) -> None:
        self.max_copies = max_copies
        self.target_concurrency = target_concurrency
        self.scale_in_cooldown_seconds = scale_in_cooldown_seconds
        self.scale_out_cooldown_seconds = scale_out_cooldown_seconds
        self._client = LazyClient("application-autoscaling", region=region, client=client)
        self._cloudwatch = LazyClient("cloudwatch", region=region, client=cloudwatch)

    @classmethod
    def from_settings(cls, settings: Settings) -> ComponentAutoscaling:
        return cls(
            max_copies=settings.component_max_copies,
            target_concurrency=settings.component_target_concurrency,
            scale_in_cooldown_seconds=settings.scale_in_cooldown_seconds,
            scale_out_cooldown_seconds=settings.scale_out_cooldown_seconds,
            region=settings.region,
        )

    @property
    def _aas(self) -> Any:
        return self._client.get()

    @property
    def _cw(self) -> Any:
        return self._cloudwatch.get()

    def tracking_configuration(self) -> dict[str, Any]:
        return {
            "TargetValue": float(self.target_concurrency),
            "PredefinedMetricSpecification": {"PredefinedMetricType": METRIC},
            "ScaleInCooldown": self.scale_in_cooldown_seconds,
            "ScaleOutCooldown": self.scale_out_cooldown_seconds,
        }

    @staticmethod
    def from_zero_configuration() -> dict[str, Any]:
        return {
            "AdjustmentType": "ChangeInCapacity",
            "MetricAggregationType": "Maximum",
            "Cooldown": FROM_ZERO_COOLDOWN_SECONDS,
            "StepAdjustments": [{"MetricIntervalLowerBound": 0.0, "ScalingAdjustment": 1}],
        }

    def sync(self, *, floors: Mapping[str, int]) -> None:
        """Gives each component (name -> the copies it must keep) its scalable target, both
        policies and the scale-from-zero alarm. Call it only for components ``InService``."""
        if not floors:
            return
        names = sorted(floors)
        targets = self._targets(names)
        policies = self._policies(names)
        alarms = self._alarms(names)
        tracking = self.tracking_configuration()
        from_zero = self.from_zero_configuration()
        for name in names:
            floor = min(floors[name], self.max_copies)
            target = targets.get(name)
            if target is None or (target.get("MinCapacity"), target.get("MaxCapacity")) != (
                floor,
                self.max_copies,
            ):
                self._aas.register_scalable_target(
                    ServiceNamespace=NAMESPACE,
                    ResourceId=resource_id(name),
                    ScalableDimension=DIMENSION,
                    MinCapacity=floor,
                    MaxCapacity=self.max_copies,
                )
            found = policies.get(tracking_policy_name(name))
            if found is None or not same_tracking(found, tracking, metric=METRIC):
                self._put_policy(
                    name,
                    tracking_policy_name(name),
                    PolicyType="TargetTrackingScaling",
                    TargetTrackingScalingPolicyConfiguration=tracking,
                )
            step = policies.get(from_zero_policy_name(name))
            if step is None or step.get("StepScalingPolicyConfiguration") != from_zero:
                arn = self._put_policy(
                    name,
                    from_zero_policy_name(name),
                    PolicyType="StepScaling",
                    StepScalingPolicyConfiguration=from_zero,
                )
            else:
                arn = str(step["PolicyARN"])
            alarm = alarms.get(from_zero_alarm_name(name))
            if alarm is None or list(alarm.get("AlarmActions", [])) != [arn]:
                self._put_alarm(name, policy_arn=arn)

    def remove(self, *, components: Collection[str]) -> None:
        """Takes the alarm, policies and target off each component (before it is deleted:
        a target left behind would keep scaling a component that no longer exists)."""
        names = sorted(components)
        if not names:
            return
        self._cw.delete_alarms(AlarmNames=[from_zero_alarm_name(n) for n in names])
        targets = self._targets(names)
        policies = self._policies(names)
        for name in names:
            for policy in (tracking_policy_name(name), from_zero_policy_name(name)):
                if policy in policies:
                    ignore_missing(
                        self._aas.delete_scaling_policy,
                        PolicyName=policy,
                        ServiceNamespace=NAMESPACE,
                        ResourceId=resource_id(name),
                        ScalableDimension=DIMENSION,
                    )
            if name in targets:
                ignore_missing(
                    self._aas.deregister_scalable_target,
                    ServiceNamespace=NAMESPACE,
                    ResourceId=resource_id(name),
                    ScalableDimension=DIMENSION,
                )

    # Pieces ---------------------------------------------------------------------------
    def _put_policy(self, component: str, policy: str, **config: Any) -> str:
        answer = self._aas.put_scaling_policy(
            PolicyName=policy,
            ServiceNamespace=NAMESPACE,
            ResourceId=resource_id(component),
            ScalableDimension=DIMENSION,
            **config,
        )
        return str(answer["PolicyARN"])

    def _put_alarm(self, component: str, *, policy_arn: str) -> None:
        self._cw.put_metric_alarm(
            AlarmName=from_zero_alarm_name(component),
            AlarmDescription=(
                f"Requests to {component} refused for want of a copy: start one "
                "(modelway scale from zero)."
            ),
            Namespace="AWS/SageMaker",
            MetricName=NO_CAPACITY_METRIC,
            Dimensions=[{"Name": "InferenceComponentName", "Value": component}],
            Statistic="Sum",
            Period=60,
            EvaluationPeriods=1,
            Threshold=1.0,
            ComparisonOperator="GreaterThanOrEqualToThreshold",
            TreatMissingData="missing",
            AlarmActions=[policy_arn],
        )

    def _targets(self, names: list[str]) -> dict[str, dict[str, Any]]:
        ids = {resource_id(n): n for n in names}
        found: dict[str, dict[str, Any]] = {}
        # A describe takes at most 50 ids.
        for chunk in _chunks(list(ids), 50):
            pages = self._aas.get_paginator("describe_scalable_targets").paginate(
                ServiceNamespace=NAMESPACE, ResourceIds=chunk, ScalableDimension=DIMENSION
            )
            for page in pages:
                for target in page.get("ScalableTargets", []):
                    name = ids.get(target.get("ResourceId", ""))
                    if name is not None:
                        found[name] = target
        return found

    def _policies(self, names: list[str]) -> dict[str, dict[str, Any]]:
        wanted = {
            (resource_id(n), policy): policy
            for n in names
            for policy in (tracking_policy_name(n), from_zero_policy_name(n))
        }
        found: dict[str, dict[str, Any]] = {}
        for chunk in _chunks([policy for _, policy in wanted], 50):
            pages = self._aas.get_paginator("describe_scaling_policies").paginate(
                ServiceNamespace=NAMESPACE, PolicyNames=chunk, ScalableDimension=DIMENSION
            )
            for page in pages:
                for policy in page.get("ScalingPolicies", []):
                    key = (policy.get("ResourceId", ""), policy.get("PolicyName", ""))
                    if key in wanted:
                        found[wanted[key]] = policy
        return found

    def _alarms(self, names: list[str]) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        for chunk in _chunks([from_zero_alarm_name(n) for n in names], 100):
            for alarm in self._cw.describe_alarms(AlarmNames=chunk).get("MetricAlarms", []):
                found[str(alarm["AlarmName"])] = alarm
        return found


def _chunks(items: list[str], size: int) -> list[list[str]]:
    return [items[i : i + size] for i in range(0, len(items), size)]
