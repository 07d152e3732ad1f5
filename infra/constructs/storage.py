"""The data bucket and the DynamoDB registry table.

One bucket, four prefixes, each with one owner:

* ``artifacts/`` model artifacts (``{model}/{version}/model.tar.gz``); SageMaker reads only this
* ``uploads/``   artifacts uploaded through the API before they are registered
* ``inputs/``    batch uploads; an object created here is scored by the batch function
* ``outputs/``   batch results and error files
* ``captures/``  sampled requests and answers of aliases with capture or shadow traffic
  (written by the router; ``*.pending.jsonl`` ones are shadowed by the batch function)
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from constructs import Construct

from functions.core.registry import table_shape as shape
from infra.constructs.nag import allow

ARTIFACTS_PREFIX = "artifacts/"
UPLOADS_PREFIX = "uploads/"
INPUTS_PREFIX = "inputs/"
OUTPUTS_PREFIX = "outputs/"
CAPTURES_PREFIX = "captures/"
# The registry table's keys, index and TTL are defined once, beside the code that reads them.
GSI1 = shape.GSI1
# The registry's calls (transactions are authorized item by item with these same actions).
TABLE_READ_ACTIONS = ("dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:Query")
TABLE_WRITE_ACTIONS = (
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
    "dynamodb:ConditionCheckItem",
)
# Overwritten and deleted objects stay recoverable this long before the versions go.
NONCURRENT_VERSION_DAYS = 30


class Storage(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        removal_policy: cdk.RemovalPolicy,
        outputs_expiration_days: int,
        uploads_expiration_days: int,
        access_logs_expiration_days: int,
        captures_expiration_days: int,
    ) -> None:
        super().__init__(scope, construct_id)
        destroy = removal_policy == cdk.RemovalPolicy.DESTROY
        self.access_log_bucket = s3.Bucket(
            self,
            "AccessLogs",
            encryption=s3.BucketEncryption.S3_MANAGED,  # log delivery cannot write to SSE-KMS
            enforce_ssl=True,
            minimum_tls_version=1.2,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="expire-access-logs",
                    expiration=cdk.Duration.days(access_logs_expiration_days),
                    abort_incomplete_multipart_upload_after=cdk.Duration.days(1),
                )
            ],
            removal_policy=removal_policy,
            auto_delete_objects=destroy,
        )
        self.bucket = s3.Bucket(
            self,
            "Data",
            encryption=s3.BucketEncryption.S3_MANAGED,
            enforce_ssl=True,
            minimum_tls_version=1.2,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            versioned=True,
            server_access_logs_bucket=self.access_log_bucket,
            server_access_logs_prefix="data-bucket/",
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="expire-outputs",
                    prefix=OUTPUTS_PREFIX,
                    expiration=cdk.Duration.days(outputs_expiration_days),
                ),
                s3.LifecycleRule(
                    id="expire-uploads",
                    prefix=UPLOADS_PREFIX,
                    expiration=cdk.Duration.days(uploads_expiration_days),
                ),
                # Captured traffic holds callers' inputs: kept only as long as a comparison
                # needs it (one folder per day, so a report's window is what survives).
                s3.LifecycleRule(
                    id="expire-captures",
                    prefix=CAPTURES_PREFIX,
                    expiration=cdk.Duration.days(captures_expiration_days),
                ),
                s3.LifecycleRule(
                    id="expire-old-versions",
                    noncurrent_version_expiration=cdk.Duration.days(NONCURRENT_VERSION_DAYS),
                    expired_object_delete_marker=True,
                    abort_incomplete_multipart_upload_after=cdk.Duration.days(1),
                ),
            ],
            removal_policy=removal_policy,
            auto_delete_objects=destroy,
        )
        string = dynamodb.AttributeType.STRING
        self.table = dynamodb.Table(
            self,
            "Registry",
            partition_key=dynamodb.Attribute(name=shape.PARTITION_KEY, type=string),
            sort_key=dynamodb.Attribute(name=shape.SORT_KEY, type=string),
            billing_mode=dynamodb.BillingMode[shape.BILLING_MODE],
            encryption=dynamodb.TableEncryption.AWS_MANAGED,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            time_to_live_attribute=shape.TTL_ATTRIBUTE,
            deletion_protection=not destroy,
            removal_policy=removal_policy,
        )
        self.table.add_global_secondary_index(
            index_name=shape.GSI1,
            partition_key=dynamodb.Attribute(name=shape.GSI1_PARTITION_KEY, type=string),
            sort_key=dynamodb.Attribute(name=shape.GSI1_SORT_KEY, type=string),
            projection_type=dynamodb.ProjectionType[shape.GSI1_PROJECTION],
        )

    def objects(self, prefix: str) -> str:
        """The ARN pattern of every object under ``prefix``."""
        return self.bucket.arn_for_objects(f"{prefix}*")

    @property
    def table_arns(self) -> list[str]:
        """The table and its one index, by name (no wildcard)."""
        return [self.table.table_arn, f"{self.table.table_arn}/index/{GSI1}"]

    def grant_table(self, role: iam.IRole, *, write: bool) -> None:
        actions = [*TABLE_READ_ACTIONS, *(TABLE_WRITE_ACTIONS if write else ())]
        allow(role, actions=actions, resources=self.table_arns)

    def grant_list(self, role: iam.IRole, *, prefixes: list[str], reason: str) -> None:
        """``s3:ListBucket`` on the bucket, for keys under ``prefixes`` only. With it S3 tells
        a missing object (404) from a forbidden one; without it every miss is a 403."""
        allow(
            role,
            actions=["s3:ListBucket"],
            resources=[self.bucket.bucket_arn],
            conditions={"StringLike": {"s3:prefix": [f"{p}*" for p in prefixes]}},
            wildcard_reason=reason,
        )

    def grant_objects(
        self, role: iam.IRole, *, prefix: str, actions: list[str], reason: str
    ) -> None:
        """``actions`` on the objects under ``prefix`` only."""
        allow(role, actions=actions, resources=[self.objects(prefix)], wildcard_reason=reason)
