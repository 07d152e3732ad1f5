"""SageMaker hosting for modelway versions: a Model per version, one endpoint per model.

Names (all ``settings.resolved_endpoint_prefix``-prefixed, at most 63 characters):
Model ``{prefix}-{model}-v{N}``, endpoint ``{prefix}-{model}`` (``naming.endpoint_name``),
endpoint configuration ``{prefix}-{model}-{hash}`` where the hash covers the variants and
weights, so the same plan always names the same configuration and a retried apply reuses it.

Endpoint changes, and why each is done the way it is:

- no endpoint yet: ``CreateEndpoint``;
- same variants (names, models, instance type and count), other weights:
  ``UpdateEndpointWeightsAndCapacities`` — no new fleet for a weight change;
- same variant names, other models or instances: ``UpdateEndpoint`` with deployment
  guardrails — blue/green with the configured traffic shifting (all at once, canary or
  linear), a bake period, and auto-rollback when a CloudWatch alarm fires;
- variants added or removed (a new version to serve, an old one dropped): ``UpdateEndpoint``
  without a ``DeploymentConfig``. SageMaker requires guardrail deployments to keep the
  variant names ("your new endpoint configuration must have the same variant name as the
  old"), and a plain update is still SageMaker's own blue/green (new fleet, traffic flipped,
  old fleet removed). Traffic reaches a new version only when an alias moves to it, and that
  move is the rollout control: the alias's canary weight, and rollback in one step.

Every call here starts a change and returns (a Lambda cannot wait for a GPU fleet); an
endpoint already changing answers ``Conflict`` with ``Retry-After``. ``wait`` is for the CLI.

Autoscaling (``autoscaling.py`` holds SageMaker's rules): while the endpoint is ``InService``,
each apply first gives the variants it keeps their scalable targets and policies (registering
variants a previous update added), and deregisters the variants it is about to remove or move
to another instance type, before ``UpdateEndpoint``; ``wait`` (the CLI) or the
endpoint-events function (when SageMaker reports the endpoint ``IN_SERVICE``) registers the
rest once the update is done, through ``ensure_autoscaling``. With autoscaling on, an update
retains each kept variant's current instance count (``RetainAllVariantProperties``, weights
excluded): the new configuration's initial count would otherwise undo what the autoscaler
scaled out to.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from functions.core.aws_clients import LazyClient
from functions.core.deploy.base import ENDPOINT_BUSY, Outcome
from functions.core.exceptions import Conflict, InvalidRequest
from functions.core.naming import endpoint_name, fit_name

if TYPE_CHECKING:
    from functions.core.deploy.autoscaling import VariantAutoscaling
    from functions.core.deploy.guardrail import ModelGuardrail
    from functions.core.deploy.plan import EndpointPlan
    from functions.core.registry.base import ModelVersion
    from functions.core.settings import Settings

# How long an admin is told to wait before retrying a move while the endpoint is changing.
BUSY_RETRY_AFTER_SECONDS = 60
# Endpoint statuses in which the fleet DescribeEndpoint lists answers requests.
SERVING_STATUSES = frozenset({"InService", "Updating", "SystemUpdating", "RollingBack"})
MODEL_VERSION_ENV = "MODELWAY_MODEL_VERSION"
MODEL_NAME_ENV = "MODELWAY_MODEL_NAME"


class SageMakerDeployer:
    def __init__(
        self,
        *,
        prefix: str,
        role_arn: str | None,
        image_uri: str | None,
        instance_type: str,
        instance_count: int,
        traffic_routing: str = "ALL_AT_ONCE",
        canary_percent: int = 10,
        wait_interval_seconds: int = 300,
        termination_wait_seconds: int = 300,
        max_execution_timeout_seconds: int = 3600,
        alarm_names: tuple[str, ...] = (),
        region: str | None = None,
        client: Any = None,
        autoscaling: VariantAutoscaling | None = None,
        guardrail: ModelGuardrail | None = None,
    ) -> None:
        self._prefix = prefix
        self._role_arn = role_arn
        self._image_uri = image_uri
        self._instance_type = instance_type
        self._instance_count = instance_count
        self._routing = traffic_routing
        self._canary_percent = canary_percent
        self._wait_interval = wait_interval_seconds
        self._termination_wait = termination_wait_seconds
        self._max_execution = max_execution_timeout_seconds
        self._alarms = tuple(alarm_names)
        self._client = LazyClient("sagemaker", region=region, client=client)
        self._autoscaling = autoscaling
        self._guardrail = guardrail

    @classmethod
    def from_settings(cls, settings: Settings) -> SageMakerDeployer:
        from functions.core.deploy.autoscaling import VariantAutoscaling

        return cls(
            **cls.options_from(settings),
            autoscaling=VariantAutoscaling.from_settings(settings),
        )

    @staticmethod
    def options_from(settings: Settings) -> dict[str, Any]:
        """The settings every SageMaker deployer takes (names, role, image, fleet, guarded
        deployments), whatever the hosting."""
        from functions.core.deploy.guardrail import ModelGuardrail

        return {
            "prefix": settings.resolved_endpoint_prefix,
            "role_arn": settings.sagemaker_role_arn,
            "image_uri": settings.serving_image_uri,
            "instance_type": settings.instance_type,
            "instance_count": settings.initial_instance_count,
            "traffic_routing": settings.deploy_traffic_routing,
            "canary_percent": settings.deploy_canary_percent,
            "wait_interval_seconds": settings.deploy_wait_interval_seconds,
            "termination_wait_seconds": settings.deploy_termination_wait_seconds,
            "max_execution_timeout_seconds": settings.deploy_max_execution_timeout_seconds,
            "alarm_names": tuple(settings.rollback_alarm_names),
            "region": settings.region,
            "guardrail": ModelGuardrail(
                prefix=settings.resolved_endpoint_prefix,
                threshold=settings.rollback_5xx_count,
                topic_arn=settings.alarm_topic_arn,
                region=settings.region,
            ),
        }

    @property
    def _sm(self) -> Any:
        return self._client.get()

    # Names ----------------------------------------------------------------------------
    def model_name(self, *, model: str, version: int) -> str:
        return fit_name(f"{self._prefix}-{model}-v{version}")

    def endpoint_name(self, *, model: str) -> str:
        return fit_name(endpoint_name(prefix=self._prefix, model=model))

    # Deployer -------------------------------------------------------------------------
    def deploy_version(self, *, version: ModelVersion) -> None:
        name = self.model_name(model=version.model, version=version.version)
        try:
            self._sm.describe_model(ModelName=name)
            return  # Models are immutable: one that exists is this version's.
        except Exception as exc:
            if not not_found(exc):
                raise
        if not self._image_uri or not self._role_arn:
            raise InvalidRequest(
                "cannot deploy: MODELWAY_SERVING_IMAGE_URI and MODELWAY_SAGEMAKER_ROLE_ARN "
                "must be set",
                code="deploy_not_configured",
            )
        try:
            self._sm.create_model(
                ModelName=name,
                ExecutionRoleArn=self._role_arn,
                PrimaryContainer={
                    "Image": self._image_uri,
                    "ModelDataUrl": version.artifact_uri,
                    "Environment": {
                        MODEL_NAME_ENV: version.model,
                        MODEL_VERSION_ENV: str(version.version),
                    },
                },
                Tags=[
                    {"Key": "modelway:model", "Value": version.model},
                    {"Key": "modelway:version", "Value": str(version.version)},
                ],
            )
        except Exception as exc:
            if not already_exists(exc):  # a racing publisher of the same version made it
                raise

    def apply(self, *, plan: EndpointPlan, versions: Mapping[int, ModelVersion]) -> Outcome:
        if not plan.versions:
            return "unchanged"  # nothing servable: leave whatever runs alone
        variants: list[dict[str, Any]] = [
            {
                "VariantName": versions[v].variant_name,
                "ModelName": self.model_name(model=plan.model, version=v),
                "InstanceType": self._instance_type,
                "InitialInstanceCount": self._instance_count,
                "InitialVariantWeight": float(plan.weights.get(v, 0)),
            }
            for v in plan.versions
        ]
        endpoint = self.endpoint_name(model=plan.model)
        current = self._describe_endpoint(endpoint)
        if current is None:
            self._create_endpoint(
                model=plan.model, config=self._create_config(plan.model, variants)
            )
            return "created"
        status = current.get("EndpointStatus")
        if status != "InService":
            if self._pending_matches(current=current, variants=variants):
                # E.g. a model's first publish: the endpoint is still Creating with exactly
                # these variants, and the move that follows (``default`` → v1) changes nothing.
                return "unchanged"
            raise self._busy(endpoint, status)
        running = self._sm.describe_endpoint_config(
            EndpointConfigName=current["EndpointConfigName"]
        )["ProductionVariants"]
        # Variants that stay on the endpoint with their instance type keep (or get) their
        # autoscaling; the others must lose it before UpdateEndpoint (``autoscaling.py``).
        wanted_types = {str(v["VariantName"]): v["InstanceType"] for v in variants}
        kept = [
            str(v["VariantName"])
            for v in running
            if wanted_types.get(str(v["VariantName"])) == v.get("InstanceType")
        ]
        dropped = [str(v["VariantName"]) for v in running if str(v["VariantName"]) not in kept]
        if _shape(running) == _shape(variants):
            self._scale(endpoint=endpoint, keep=kept)
            live = {
                v["VariantName"]: float(v.get("CurrentWeight", v.get("DesiredWeight", 0.0)))
                for v in current.get("ProductionVariants", [])
            }
            wanted = {str(v["VariantName"]): float(v["InitialVariantWeight"]) for v in variants}
            # Weights are relative: 1 and 100 on a lone variant are the same split.
            live_shares, wanted_shares = _shares(live), _shares(wanted)
            if all(
                math.isclose(live_shares.get(name, 0.0), share, abs_tol=1e-6)
                for name, share in wanted_shares.items()
            ):
                return "unchanged"
            self._sm.update_endpoint_weights_and_capacities(
                EndpointName=endpoint,
                DesiredWeightsAndCapacities=[
                    {"VariantName": name, "DesiredWeight": w} for name, w in wanted.items()
                ],
            )
            return "reweighted"
        config = self._create_config(plan.model, variants)
        request: dict[str, Any] = {"EndpointName": endpoint, "EndpointConfigName": config}
        if {v["VariantName"] for v in running} == {v["VariantName"] for v in variants}:
            request["DeploymentConfig"] = self.deployment_config(model=plan.model)
        if self._autoscaling is not None:
            request["RetainAllVariantProperties"] = True
            request["ExcludeRetainedVariantProperties"] = [
                {"VariantPropertyType": "DesiredWeight"},
                {"VariantPropertyType": "DataCaptureConfig"},
            ]
        self._scale(endpoint=endpoint, keep=kept, drop=dropped)
        self._sm.update_endpoint(**request)
        return "updated"

    def wait(self, *, model: str) -> None:
        waiter = self._sm.get_waiter("endpoint_in_service")
        # A GPU fleet plus bake periods can take most of an hour; poll every 30 s.
        attempts = max(1, self._max_execution // 30 + 10)
        waiter.wait(
            EndpointName=self.endpoint_name(model=model),
            WaiterConfig={"Delay": 30, "MaxAttempts": attempts},
        )
        self.ensure_autoscaling(model=model)

    def live_versions(self, *, model: str) -> frozenset[int] | None:
        """The versions of the variants the endpoint serves now: while it is ``Updating``
        (or rolling back) ``DescribeEndpoint`` lists the fleet still serving, not the one
        being deployed; while it is ``Creating`` (or failed) nothing serves."""
        current = self._describe_endpoint(self.endpoint_name(model=model))
        if current is None or current.get("EndpointStatus") not in SERVING_STATUSES:
            return frozenset()
        names = (str(v.get("VariantName", "")) for v in current.get("ProductionVariants", []))
        return frozenset(int(n[1:]) for n in names if n[:1] == "v" and n[1:].isdigit())

    def ensure_autoscaling(self, *, model: str) -> bool:
        """Gives every variant of the model's endpoint its autoscaling if the endpoint is
        ``InService`` (True); an endpoint that is missing or changing is left for later (False).
        Idempotent: what is already right is only read."""
        if self._autoscaling is None:
            return False
        endpoint = self.endpoint_name(model=model)
        current = self._describe_endpoint(endpoint)
        if current is None or current.get("EndpointStatus") != "InService":
            return False
        running = self._sm.describe_endpoint_config(
            EndpointConfigName=current["EndpointConfigName"]
        )["ProductionVariants"]
        self._scale(endpoint=endpoint, keep=[str(v["VariantName"]) for v in running])
        return True

    # Pieces ---------------------------------------------------------------------------
    def deployment_config(self, *, model: str) -> dict[str, Any]:
        """Blue/green with the configured traffic shifting, and auto-rollback on the model's
        own alarm (created here if need be) and any configured ones."""
        routing: dict[str, Any] = {
            "Type": self._routing,
            "WaitIntervalInSeconds": self._wait_interval,
        }
        steps = 1
        if self._routing == "CANARY":
            routing["CanarySize"] = {"Type": "CAPACITY_PERCENT", "Value": self._canary_percent}
            steps = 2
        elif self._routing == "LINEAR":
            routing["LinearStepSize"] = {"Type": "CAPACITY_PERCENT", "Value": self._canary_percent}
            steps = math.ceil(100 / self._canary_percent)
        # SageMaker wants the timeout above the sum of the waits; keep some room to provision.
        floor = self._termination_wait + steps * self._wait_interval + 600
        config: dict[str, Any] = {
            "BlueGreenUpdatePolicy": {
                "TrafficRoutingConfiguration": routing,
                "TerminationWaitInSeconds": self._termination_wait,
                "MaximumExecutionTimeoutInSeconds": min(28800, max(self._max_execution, floor)),
            }
        }
        alarms = list(self._alarms)
        if self._guardrail is not None:
            alarms.insert(0, self._guardrail.ensure(model=model))
        if alarms:
            config["AutoRollbackConfiguration"] = {
                "Alarms": [{"AlarmName": name} for name in alarms]
            }
        return config

    def _scale(self, *, endpoint: str, keep: list[str], drop: list[str] | tuple[()] = ()) -> None:
        if self._autoscaling is not None:
            self._autoscaling.sync(endpoint=endpoint, keep=keep, drop=drop)

    def _pending_matches(
        self, *, current: Mapping[str, Any], variants: list[dict[str, Any]]
    ) -> bool:
        """Whether the configuration the endpoint is moving to already has these variants
        with these traffic shares."""
        pending = current.get("PendingDeploymentSummary", {}).get("EndpointConfigName")
        name = pending or current.get("EndpointConfigName")
        if not name:
            return False
        deploying = self._sm.describe_endpoint_config(EndpointConfigName=name)["ProductionVariants"]
        if _shape(deploying) != _shape(variants):
            return False
        have = _shares({str(v["VariantName"]): float(v["InitialVariantWeight"]) for v in deploying})
        want = _shares({str(v["VariantName"]): float(v["InitialVariantWeight"]) for v in variants})
        return all(math.isclose(have.get(k, 0.0), w, abs_tol=1e-6) for k, w in want.items())

    def _describe_endpoint(self, name: str) -> dict[str, Any] | None:
        try:
            found: dict[str, Any] = self._sm.describe_endpoint(EndpointName=name)
        except Exception as exc:
            if not_found(exc):
                return None
            raise
        return found

    def _create_config(
        self, model: str, variants: list[dict[str, Any]], *, own_role: bool = False
    ) -> str:
        """The configuration named after its content (a retried apply reuses it);
        ``own_role``: the endpoint runs as the execution role itself, which SageMaker requires
        where the variants hold no model (inference components)."""
        digest = hashlib.sha256(json.dumps(variants, sort_keys=True).encode()).hexdigest()[:10]
        name = fit_name(f"{self._prefix}-{model}-{digest}")
        request: dict[str, Any] = {
            "EndpointConfigName": name,
            "ProductionVariants": variants,
            "Tags": [{"Key": "modelway:model", "Value": model}],
        }
        if own_role and self._role_arn:
            request["ExecutionRoleArn"] = self._role_arn
        try:
            self._sm.create_endpoint_config(**request)
        except Exception as exc:
            if not already_exists(exc):  # the same plan applied before: same content
                raise
        return name

    def _create_endpoint(self, *, model: str, config: str) -> None:
        self._sm.create_endpoint(
            EndpointName=self.endpoint_name(model=model),
            EndpointConfigName=config,
            Tags=[{"Key": "modelway:model", "Value": model}],
        )

    @staticmethod
    def _busy(endpoint: str, status: Any) -> Conflict:
        return Conflict(
            f"endpoint {endpoint} is {status}; try again when it is InService",
            code=ENDPOINT_BUSY,
            retry_after=BUSY_RETRY_AFTER_SECONDS,
        )


def _shares(weights: dict[str, float]) -> dict[str, float]:
    total = sum(weights.values())
    return {name: w / total for name, w in weights.items()} if total else weights


def _shape(variants: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return sorted(
        (v["VariantName"], v["ModelName"], v.get("InstanceType"), v.get("InitialInstanceCount"))
        for v in variants
    )


def _error(exc: Exception) -> tuple[str, str]:
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return "", ""
    error = response.get("Error", {})
    return str(error.get("Code", "")), str(error.get("Message", ""))


def not_found(exc: Exception) -> bool:
    code, message = _error(exc)
    return code in {"ValidationException", "ValidationError"} and "Could not find" in message


def already_exists(exc: Exception) -> bool:
    code, message = _error(exc)
    return code in {"ValidationException", "ValidationError"} and (
        "already exist" in message.lower()
    )
