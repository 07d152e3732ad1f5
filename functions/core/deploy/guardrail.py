"""Each model's own rollback alarm: what SageMaker watches while it shifts that model's
endpoint to a new fleet, and rolls back on.

It counts that model's server errors only, as the router reports them (an EMF metric, see
``functions.api.handler``): ``ModelErrors`` in the ``modelway`` namespace with the
dimensions ``service`` and ``model``. A stage-wide count would let any caller's failures on
any model (or a bug in the router) roll back every guarded update in the environment.

Models are published at run time, so their alarms are too: ``ensure`` creates or updates the
alarm (``PutMetricAlarm`` is idempotent) before each guarded update of the model's endpoint.
"""

from __future__ import annotations

from typing import Any

from functions.core.aws_clients import LazyClient

# The router's metric; the handler emits exactly this (name, namespace, dimensions).
NAMESPACE = "modelway"
SERVICE = "modelway-api"
METRIC = "ModelErrors"
ROLLBACK_SUFFIX = "-rollback"


def alarm_name(*, prefix: str, model: str) -> str:
    """``{prefix}-{model}-rollback``: within the prefix the stack lets the router manage."""
    return f"{prefix}-{model}{ROLLBACK_SUFFIX}"


class ModelGuardrail:
    def __init__(
        self,
        *,
        prefix: str,
        threshold: int,
        topic_arn: str | None = None,
        region: str | None = None,
        client: Any = None,
    ) -> None:
        self._prefix = prefix
        self._threshold = threshold
        self._topic_arn = topic_arn
        self._client = LazyClient("cloudwatch", region=region, client=client)

    def ensure(self, *, model: str) -> str:
        """Create (or bring up to date) ``model``'s rollback alarm; returns its name."""
        name = alarm_name(prefix=self._prefix, model=model)
        actions = [self._topic_arn] if self._topic_arn else []
        self._client.get().put_metric_alarm(
            AlarmName=name,
            AlarmDescription=f"Deployment guardrail of model {model!r}: SageMaker rolls an "
            f"update of its endpoint back when the router answers {self._threshold} or more "
            "5xx for this model in a minute.",
            Namespace=NAMESPACE,
            MetricName=METRIC,
            Dimensions=[
                {"Name": "service", "Value": SERVICE},
                {"Name": "model", "Value": model},
            ],
            Statistic="Sum",
            Period=60,
            EvaluationPeriods=1,
            Threshold=float(self._threshold),
            ComparisonOperator="GreaterThanOrEqualToThreshold",
            TreatMissingData="notBreaching",
            AlarmActions=actions,
            OKActions=actions,
        )
        return name
