"""The environment's dashboard and alarms, and where alarms are sent.

Alarms: the API's 5xx rate and p99 latency, for people. The alarms that SageMaker deployment
guardrails watch are per model, not here: a stage-wide 5xx count would let any caller's
failures on any model roll back every guarded update. Models are published at run time, so
the control plane creates each model's rollback alarm (``functions.core.deploy.guardrail``:
``{prefix}-{model}-rollback`` on the router's ``ModelErrors`` metric for that model) with the
threshold and alarm topic this construct gives it (``model_alarm_environment``), and the
permission to write exactly those alarms (``grant_model_alarms``).
"""

from __future__ import annotations

from collections.abc import Sequence

import aws_cdk as cdk
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.config import AlarmConfig
from infra.constructs.lambdas import METRICS_NAMESPACE
from infra.constructs.nag import allow

ONE_MINUTE = cdk.Duration.minutes(1)
# The router's per-model error metric and the models' alarm names, as
# functions/core/deploy/guardrail.py has them (infra imports no runtime code; a test checks).
MODEL_ERRORS_METRIC = "ModelErrors"
ROLLBACK_SUFFIX = "-rollback"
SAGEMAKER_NAMESPACE = "AWS/SageMaker"
# Instance metrics (GPU, memory, disk) of endpoints.
ENDPOINT_INSTANCE_NAMESPACE = "/aws/sagemaker/Endpoints"


class Monitoring(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        endpoint_prefix: str,
        settings: AlarmConfig,
        stage: apigw.Stage,
        functions: dict[str, lambda_.IFunction],
        dead_letter_queue: sqs.IQueue,
        extra_alarms: Sequence[cloudwatch.Alarm] = (),
        removal_policy: cdk.RemovalPolicy,
    ) -> None:
        super().__init__(scope, construct_id)
        self.endpoint_prefix = endpoint_prefix
        self.stage = stage

        # CloudWatch publishes to an encrypted topic only with a customer managed key whose
        # policy lets it use the key.
        self.topic_key = kms.Key(
            self,
            "AlarmTopicKey",
            description=f"{endpoint_prefix}: encrypts the alarm topic",
            enable_key_rotation=True,
            removal_policy=removal_policy,
        )
        self.topic_key.grant(
            iam.ServicePrincipal("cloudwatch.amazonaws.com"), "kms:Decrypt", "kms:GenerateDataKey"
        )
        self.topic = sns.Topic(
            self,
            "AlarmTopic",
            topic_name=f"{endpoint_prefix}-alarms",
            display_name=f"modelway {endpoint_prefix} alarms",
            master_key=self.topic_key,
            enforce_ssl=True,
        )
        for email in settings.emails:
            self.topic.add_subscription(subscriptions.EmailSubscription(email))

        requests = stage.metric_count(period=ONE_MINUTE, statistic="Sum")
        server_errors = stage.metric_server_error(period=ONE_MINUTE, statistic="Sum")
        self.error_rate_alarm = cloudwatch.Alarm(
            self,
            "Api5xxRate",
            alarm_name=f"{endpoint_prefix}-api-5xx-rate",
            alarm_description=f"More than {settings.api_5xx_rate_percent}% of API requests "
            "answered 5xx.",
            metric=cloudwatch.MathExpression(
                expression="IF(requests > 0, 100 * errors / requests, 0)",
                using_metrics={"requests": requests, "errors": server_errors},
                label="5xx rate (%)",
                period=ONE_MINUTE,
            ),
            threshold=settings.api_5xx_rate_percent,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            evaluation_periods=settings.evaluation_periods,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        self.latency_alarm = cloudwatch.Alarm(
            self,
            "ApiP99Latency",
            alarm_name=f"{endpoint_prefix}-api-p99-latency",
            alarm_description=f"API p99 latency above {settings.api_p99_latency_ms} ms.",
            metric=stage.metric_latency(period=ONE_MINUTE, statistic="p99"),
            threshold=settings.api_p99_latency_ms,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            evaluation_periods=settings.evaluation_periods,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        self.rollback_5xx_count = settings.rollback_5xx_count
        self.alarms: list[cloudwatch.Alarm] = [
            self.error_rate_alarm,
            self.latency_alarm,
            *extra_alarms,
        ]
        action = cw_actions.SnsAction(self.topic)
        for alarm in self.alarms:
            alarm.add_alarm_action(action)
            alarm.add_ok_action(action)

        self.dashboard = cloudwatch.Dashboard(
            self,
            "Dashboard",
            dashboard_name=f"{endpoint_prefix}-overview",
            default_interval=cdk.Duration.hours(3),
        )
        self._add_widgets(functions=functions, dead_letter_queue=dead_letter_queue)

    # Per-model rollback alarms ------------------------------------------------------------
    @property
    def model_alarm_arns(self) -> str:
        """Every model's rollback alarm in this environment (``guardrail.alarm_name``)."""
        return cdk.Stack.of(self).format_arn(
            service="cloudwatch",
            resource="alarm",
            resource_name=f"{self.endpoint_prefix}-*{ROLLBACK_SUFFIX}",
            arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME,
        )

    def model_alarm_environment(self) -> dict[str, str]:
        """What the control plane needs to create a model's rollback alarm."""
        return {
            "MODELWAY_ROLLBACK_5XX_COUNT": str(self.rollback_5xx_count),
            "MODELWAY_ALARM_TOPIC_ARN": self.topic.topic_arn,
        }

    def grant_model_alarms(self, role: iam.IRole) -> None:
        """Creating and updating the models' rollback alarms, and no other alarm."""
        allow(
            role,
            actions=["cloudwatch:PutMetricAlarm"],
            resources=[self.model_alarm_arns],
            wildcard_reason="Each model's rollback alarm is created when its endpoint first "
            "takes a guarded update; the names are this environment's prefix, any model, "
            "and the rollback suffix.",
        )

    def _endpoint_search(self, namespace: str, metric: str, statistic: str) -> cloudwatch.IMetric:
        """Every endpoint variant of this environment (names start with its prefix)."""
        return cloudwatch.SearchExpression(
            expression=f'SEARCH(\'{{"{namespace}",EndpointName,VariantName}} '
            f'MetricName="{metric}" "{self.endpoint_prefix}"\', '
            f"'{statistic}', 60)",
            label="",
            period=ONE_MINUTE,
        )

    @staticmethod
    def _router_search(metric: str) -> cloudwatch.IMetric:
        """The router's EMF metrics (Powertools), one line per model and version."""
        return cloudwatch.SearchExpression(
            expression=f"SEARCH('{{{METRICS_NAMESPACE},service,model,version}} "
            f"MetricName=\"{metric}\"', 'Sum', 60)",
            label=metric,
            period=ONE_MINUTE,
        )

    def _add_widgets(
        self, *, functions: dict[str, lambda_.IFunction], dead_letter_queue: sqs.IQueue
    ) -> None:
        stage = self.stage
        graph = cloudwatch.GraphWidget
        self.dashboard.add_widgets(
            cloudwatch.TextWidget(
                markdown=f"# modelway `{self.endpoint_prefix}`\nAPI stage, router, model "
                "endpoints and batch scoring.",
                width=24,
                height=2,
            ),
            cloudwatch.AlarmStatusWidget(title="Alarms", alarms=self.alarms, width=24, height=3),
        )
        self.dashboard.add_widgets(
            graph(
                title="API requests",
                left=[stage.metric_count(period=ONE_MINUTE, statistic="Sum", label="requests")],
                width=6,
            ),
            graph(
                title="API latency (ms)",
                left=[
                    stage.metric_latency(period=ONE_MINUTE, statistic="p50", label="p50"),
                    stage.metric_latency(period=ONE_MINUTE, statistic="p99", label="p99"),
                    stage.metric_integration_latency(
                        period=ONE_MINUTE, statistic="p99", label="integration p99"
                    ),
                ],
                width=6,
            ),
            graph(
                title="API errors",
                left=[
                    stage.metric_client_error(period=ONE_MINUTE, statistic="Sum", label="4xx"),
                    stage.metric_server_error(period=ONE_MINUTE, statistic="Sum", label="5xx"),
                ],
                width=6,
            ),
            graph(
                title="Throttles",
                left=[
                    fn.metric_throttles(period=ONE_MINUTE, statistic="Sum", label=f"{name} Lambda")
                    for name, fn in functions.items()
                ],
                width=6,
            ),
        )
        self.dashboard.add_widgets(
            graph(
                title="Endpoint invocations",
                left=[self._endpoint_search(SAGEMAKER_NAMESPACE, "Invocations", "Sum")],
                width=6,
            ),
            graph(
                title="Model latency p99 (µs)",
                left=[self._endpoint_search(SAGEMAKER_NAMESPACE, "ModelLatency", "p99")],
                width=6,
            ),
            graph(
                title="Endpoint errors",
                left=[
                    self._endpoint_search(SAGEMAKER_NAMESPACE, "Invocation5XXErrors", "Sum"),
                    self._endpoint_search(SAGEMAKER_NAMESPACE, "Invocation4XXErrors", "Sum"),
                ],
                width=6,
            ),
            graph(
                title="GPU utilisation (%)",
                left=[
                    self._endpoint_search(ENDPOINT_INSTANCE_NAMESPACE, "GPUUtilization", "Average")
                ],
                right=[
                    self._endpoint_search(
                        ENDPOINT_INSTANCE_NAMESPACE, "GPUMemoryUtilization", "Average"
                    )
                ],
                width=6,
            ),
        )
        self.dashboard.add_widgets(
            graph(
                title="Router requests by model/version",
                left=[self._router_search("Requests")],
                right=[self._router_search("ServerErrors")],
                width=8,
            ),
            graph(
                title="5xx by model (what each model's rollback alarm counts)",
                left=[
                    cloudwatch.SearchExpression(
                        expression=f"SEARCH('{{{METRICS_NAMESPACE},service,model}} "
                        f"MetricName=\"{MODEL_ERRORS_METRIC}\"', 'Sum', 60)",
                        label=MODEL_ERRORS_METRIC,
                        period=ONE_MINUTE,
                    )
                ],
                width=8,
            ),
            graph(
                title="Lambda errors",
                left=[
                    fn.metric_errors(period=ONE_MINUTE, statistic="Sum", label=name)
                    for name, fn in functions.items()
                ],
                width=8,
            ),
            graph(
                title="Batch dead letters",
                left=[
                    dead_letter_queue.metric_approximate_number_of_messages_visible(
                        period=ONE_MINUTE, statistic="Maximum", label="waiting"
                    )
                ],
                width=8,
            ),
        )
