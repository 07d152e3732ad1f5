"""The data bucket and the registry table."""

from __future__ import annotations

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Match, Template

from infra.constructs.storage import Storage
from tests.infra.infra_testkit import Synthesized, cdk_context, environment_config

pytestmark = pytest.mark.infra


def _storage_template(removal_policy: cdk.RemovalPolicy) -> Template:
    app = cdk.App(context=cdk_context(None))  # the project's feature flags
    stack = cdk.Stack(app, "StorageOnly")
    Storage(
        stack,
        "Storage",
        removal_policy=removal_policy,
        outputs_expiration_days=30,
        uploads_expiration_days=7,
        access_logs_expiration_days=90,
        captures_expiration_days=14,
    )
    return Template.from_stack(stack)


def test_storage_construct_destroyable_empties_its_buckets() -> None:
    template = _storage_template(cdk.RemovalPolicy.DESTROY)
    template.has_resource("AWS::DynamoDB::Table", {"DeletionPolicy": "Delete"})
    template.has_resource_properties("AWS::DynamoDB::Table", {"DeletionProtectionEnabled": False})
    template.resource_count_is("Custom::S3AutoDeleteObjects", 2)


def test_storage_construct_retained_keeps_everything() -> None:
    template = _storage_template(cdk.RemovalPolicy.RETAIN)
    template.has_resource("AWS::DynamoDB::Table", {"DeletionPolicy": "Retain"})
    template.has_resource_properties("AWS::DynamoDB::Table", {"DeletionProtectionEnabled": True})
    template.all_resources("AWS::S3::Bucket", {"DeletionPolicy": "Retain"})
    template.resource_count_is("Custom::S3AutoDeleteObjects", 0)


def test_registry_table_shape(each_env: Synthesized) -> None:
    each_env.assertions.has_resource_properties(
        "AWS::DynamoDB::Table",
        {
            "KeySchema": [
                {"AttributeName": "pk", "KeyType": "HASH"},
                {"AttributeName": "sk", "KeyType": "RANGE"},
            ],
            "AttributeDefinitions": Match.array_with(
                [
                    {"AttributeName": "pk", "AttributeType": "S"},
                    {"AttributeName": "sk", "AttributeType": "S"},
                    {"AttributeName": "gsi1pk", "AttributeType": "S"},
                    {"AttributeName": "gsi1sk", "AttributeType": "S"},
                ]
            ),
            "GlobalSecondaryIndexes": [
                {
                    "IndexName": "gsi1",
                    "KeySchema": [
                        {"AttributeName": "gsi1pk", "KeyType": "HASH"},
                        {"AttributeName": "gsi1sk", "KeyType": "RANGE"},
                    ],
                    "Projection": {"ProjectionType": "ALL"},
                }
            ],
            "BillingMode": "PAY_PER_REQUEST",
            "TimeToLiveSpecification": {"AttributeName": "expires_at", "Enabled": True},
            "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
            "SSESpecification": {"SSEEnabled": True},
        },
    )


def test_removal_policy_follows_the_environment(each_env: Synthesized) -> None:
    expected = "Retain" if environment_config(each_env.name).retain else "Delete"
    for cfn_type in ("AWS::DynamoDB::Table", "AWS::S3::Bucket"):
        for resource in each_env.of_type(cfn_type).values():
            assert resource["DeletionPolicy"] == expected, cfn_type
    table = each_env.one("AWS::DynamoDB::Table")["Properties"]
    assert table["DeletionProtectionEnabled"] is (expected == "Retain")


def test_data_bucket_is_private_encrypted_versioned_and_logged(each_env: Synthesized) -> None:
    storage = each_env.stack.storage
    data_id = each_env.logical_id(storage.bucket)
    logs_id = each_env.logical_id(storage.access_log_bucket)
    data = each_env.resources[data_id]["Properties"]
    assert data["BucketEncryption"]["ServerSideEncryptionConfiguration"] == [
        {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}
    ]
    assert data["VersioningConfiguration"] == {"Status": "Enabled"}
    assert data["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    assert data["LoggingConfiguration"]["DestinationBucketName"] == {"Ref": logs_id}


def test_both_buckets_refuse_plain_http(each_env: Synthesized) -> None:
    policies = each_env.of_type("AWS::S3::BucketPolicy").values()
    buckets = {
        each_env.logical_id(b)
        for b in (each_env.stack.storage.bucket, each_env.stack.storage.access_log_bucket)
    }
    denied = set()
    for policy in policies:
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            if statement["Effect"] == "Deny" and statement.get("Condition") == {
                "Bool": {"aws:SecureTransport": "false"}
            }:
                denied.add(policy["Properties"]["Bucket"]["Ref"])
    assert denied == buckets


def test_lifecycle_expires_outputs_uploads_and_captures_only(each_env: Synthesized) -> None:
    config = environment_config(each_env.name).data
    data = each_env.resources[each_env.logical_id(each_env.stack.storage.bucket)]["Properties"]
    rules = {rule["Id"]: rule for rule in data["LifecycleConfiguration"]["Rules"]}
    assert rules["expire-outputs"]["Prefix"] == "outputs/"
    assert rules["expire-outputs"]["ExpirationInDays"] == config.outputs_expiration_days
    assert rules["expire-uploads"]["Prefix"] == "uploads/"
    assert rules["expire-uploads"]["ExpirationInDays"] == config.uploads_expiration_days
    assert rules["expire-captures"]["Prefix"] == "captures/"
    assert rules["expire-captures"]["ExpirationInDays"] == config.captures_expiration_days
    # Artifacts and inputs never expire; old versions of anything do.
    assert "NoncurrentVersionExpiration" in rules["expire-old-versions"]
    assert "ExpirationInDays" not in rules["expire-old-versions"]
    prefixes = {rule.get("Prefix") for rule in rules.values()}
    assert not prefixes & {"artifacts/", "inputs/"}


def test_termination_protection_follows_the_environment(each_env: Synthesized) -> None:
    config = environment_config(each_env.name)
    assert each_env.stack.termination_protection is config.termination_protection


def test_the_test_table_has_the_stacks_shape(monkeypatch: pytest.MonkeyPatch) -> None:
    """``create_table`` (every moto test's registry) builds the table the stack deploys: the
    same keys, index, projection, billing and TTL, so no AWS test runs on a shape prod lacks."""
    from moto import mock_aws

    from functions.core.registry.dynamodb import create_table

    resources = _storage_template(cdk.RemovalPolicy.DESTROY).find_resources("AWS::DynamoDB::Table")
    (deployed,) = (r["Properties"] for r in resources.values())
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    with mock_aws():
        import boto3

        client = boto3.client("dynamodb", region_name="us-east-1")
        create_table(table_name="shape", region="us-east-1", client=client)
        table = client.describe_table(TableName="shape")["Table"]
        ttl = client.describe_time_to_live(TableName="shape")["TimeToLiveDescription"]
    assert table["KeySchema"] == deployed["KeySchema"]
    assert sorted(table["AttributeDefinitions"], key=str) == sorted(
        deployed["AttributeDefinitions"], key=str
    )
    (index,) = table["GlobalSecondaryIndexes"]
    (deployed_index,) = deployed["GlobalSecondaryIndexes"]
    assert {k: index[k] for k in ("IndexName", "KeySchema", "Projection")} == deployed_index
    assert table["BillingModeSummary"]["BillingMode"] == deployed["BillingMode"]
    assert ttl == {
        "TimeToLiveStatus": "ENABLED",
        "AttributeName": deployed["TimeToLiveSpecification"]["AttributeName"],
    }
