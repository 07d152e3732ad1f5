"""Least privilege: who may do what, on which named resources."""

from __future__ import annotations

import pytest

from tests.infra.infra_testkit import (
    Synthesized,
    as_list,
    flat,
    grants,
    is_cdk_internal,
    role_policy,
    statements,
)

pytestmark = pytest.mark.infra

# Actions that read or change data (objects, items, inferences, messages, invocations).
DATA_ACTION_PREFIXES = (
    "s3:GetObject",
    "s3:PutObject",
    "s3:DeleteObject",
    "s3:AbortMultipartUpload",
    "dynamodb:",
    "sagemaker:InvokeEndpoint",
    "sqs:SendMessage",
    "lambda:InvokeFunction",
)


MODEL_REGISTRY_ACTIONS = frozenset(
    {
        "sagemaker:CreateModelPackageGroup",
        "sagemaker:CreateModelPackage",
        "sagemaker:DescribeModelPackage",
        "sagemaker:UpdateModelPackage",
        "sagemaker:ListModelPackages",
    }
)


def _is_data_action(action: str) -> bool:
    return action.startswith(DATA_ACTION_PREFIXES)


def test_no_wildcard_actions_anywhere(each_env: Synthesized) -> None:
    for policy, statement in statements(each_env):
        for action in as_list(statement["Action"]):
            assert "*" not in action, f"{policy}: {action}"


def test_data_actions_always_name_their_resources(each_env: Synthesized) -> None:
    for policy, statement in statements(each_env):
        if is_cdk_internal(policy):
            continue
        data_actions = [a for a in as_list(statement["Action"]) if _is_data_action(a)]
        if not data_actions:
            continue
        for resource in as_list(statement["Resource"]):
            value = flat(resource)
            assert value != "*", f"{policy}: {data_actions} on '*'"
            if value.endswith("*"):
                # Only object prefixes and SageMaker name prefixes end in a wildcard.
                assert value.endswith(
                    ("/artifacts/*", "/uploads/*", "/inputs/*", "/outputs/*", "/captures/*")
                ) or value.endswith(
                    tuple(
                        f"{kind}/modelway-{each_env.name}-*"
                        for kind in ("endpoint", "inference-component")
                    )
                ), f"{policy}: {value}"


def test_sagemaker_execution_role_reads_only_the_artifacts_prefix(each_env: Synthesized) -> None:
    role = each_env.stack.endpoints.execution_role
    allowed = grants(role_policy(each_env, role))
    bucket = each_env.logical_id(each_env.stack.storage.bucket)
    s3 = {action: res for action, res in allowed.items() if action.startswith("s3:")}
    assert s3 == {"s3:GetObject": {f"<{bucket}.Arn>/artifacts/*"}}
    assert not any(a.startswith("dynamodb:") for a in allowed)
    assert allowed["cloudwatch:DescribeAlarms"] == {
        f"arn:<AWS::Partition>:cloudwatch:<AWS::Region>:<AWS::AccountId>:alarm:"
        f"modelway-{each_env.name}-*"
    }
    trust = each_env.resources[each_env.logical_id(role)]["Properties"]["AssumeRolePolicyDocument"]
    assert trust["Statement"][0]["Principal"] == {"Service": "sagemaker.amazonaws.com"}


def test_router_permissions(each_env: Synthesized) -> None:
    stack = each_env.stack
    allowed = grants(role_policy(each_env, stack.api.router_function.role))
    bucket = each_env.logical_id(stack.storage.bucket)
    table = each_env.logical_id(stack.storage.table)
    prefix = f"modelway-{each_env.name}"
    region = "arn:<AWS::Partition>:sagemaker:<AWS::Region>:<AWS::AccountId>"
    s3 = {a: r for a, r in allowed.items() if a.startswith("s3:")}
    assert s3 == {
        "s3:GetObject": {
            f"<{bucket}.Arn>/uploads/*",
            f"<{bucket}.Arn>/artifacts/*",
            f"<{bucket}.Arn>/captures/*",
        },
        # Registering reads and copies the exact upload version it verified.
        "s3:GetObjectVersion": {f"<{bucket}.Arn>/uploads/*"},
        "s3:PutObject": {f"<{bucket}.Arn>/artifacts/*", f"<{bucket}.Arn>/captures/*"},
        "s3:DeleteObject": {f"<{bucket}.Arn>/artifacts/*"},
        "s3:AbortMultipartUpload": {f"<{bucket}.Arn>/artifacts/*"},
        "s3:ListBucket": {f"<{bucket}.Arn>"},
    }
    (listing,) = [
        s
        for s in role_policy(each_env, stack.api.router_function.role)
        if "s3:ListBucket" in as_list(s["Action"])
    ]
    assert listing["Condition"] == {
        "StringLike": {"s3:prefix": ["uploads/*", "artifacts/*", "captures/*"]}
    }
    assert allowed["dynamodb:PutItem"] == {f"<{table}.Arn>", f"<{table}.Arn>/index/gsi1"}
    assert "dynamodb:Scan" not in allowed
    assert allowed["sagemaker:InvokeEndpoint"] == {
        f"{region}:endpoint/{prefix}-*",
        f"{region}:inference-component/{prefix}-*",
    }
    assert allowed["sagemaker:CreateModel"] == {
        f"{region}:model/{prefix}-*",
        f"{region}:endpoint-config/{prefix}-*",
        f"{region}:endpoint/{prefix}-*",
    }
    assert allowed["iam:PassRole"] == {
        f"<{each_env.logical_id(stack.endpoints.execution_role)}.Arn>"
    }
    (pass_role,) = [
        s
        for s in role_policy(each_env, stack.api.router_function.role)
        if "iam:PassRole" in as_list(s["Action"])
    ]
    assert pass_role["Condition"] == {
        "StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}
    }
    assert allowed["apigateway:POST"] >= {"arn:<AWS::Partition>:apigateway:<AWS::Region>::/apikeys"}
    # The SageMaker Model Registry mirror: this environment's package groups and packages.
    registry = {a: r for a, r in allowed.items() if a in MODEL_REGISTRY_ACTIONS}
    assert registry == {
        "sagemaker:CreateModelPackageGroup": {f"{region}:model-package-group/{prefix}-*"},
        "sagemaker:CreateModelPackage": {f"{region}:model-package/{prefix}-*/*"},
        "sagemaker:DescribeModelPackage": {f"{region}:model-package/{prefix}-*/*"},
        "sagemaker:UpdateModelPackage": {f"{region}:model-package/{prefix}-*/*"},
        "sagemaker:ListModelPackages": {"*"},
    }


def test_authorizer_only_reads_the_table(each_env: Synthesized) -> None:
    stack = each_env.stack
    allowed = grants(role_policy(each_env, stack.api.authorizer_function.role))
    table = each_env.logical_id(stack.storage.table)
    assert {a for a in allowed if a.startswith("dynamodb:")} == {
        "dynamodb:GetItem",
        "dynamodb:BatchGetItem",
        "dynamodb:Query",
    }
    assert allowed["dynamodb:GetItem"] == {f"<{table}.Arn>", f"<{table}.Arn>/index/gsi1"}
    assert not any(a.startswith(("s3:", "sagemaker:", "apigateway:")) for a in allowed)


def test_batch_reads_inputs_writes_outputs_and_invokes_endpoints(each_env: Synthesized) -> None:
    stack = each_env.stack
    allowed = grants(role_policy(each_env, stack.batch.function.role))
    bucket = each_env.logical_id(stack.storage.bucket)
    s3 = {a: r for a, r in allowed.items() if a.startswith("s3:")}
    assert s3 == {
        "s3:GetObject": {
            f"<{bucket}.Arn>/inputs/*",
            f"<{bucket}.Arn>/outputs/*",
            f"<{bucket}.Arn>/captures/*",
        },
        # The bucket is versioned and every job reads the version its event names.
        "s3:GetObjectVersion": {f"<{bucket}.Arn>/inputs/*", f"<{bucket}.Arn>/captures/*"},
        "s3:PutObject": {f"<{bucket}.Arn>/outputs/*", f"<{bucket}.Arn>/captures/*"},
        "s3:AbortMultipartUpload": {f"<{bucket}.Arn>/outputs/*"},
        # So that a deleted input is a 404 (the job fails saying so), not a 403.
        "s3:ListBucket": {f"<{bucket}.Arn>"},
    }
    (listing,) = [
        s
        for s in role_policy(each_env, stack.batch.function.role)
        if "s3:ListBucket" in as_list(s["Action"])
    ]
    assert listing["Condition"] == {"StringLike": {"s3:prefix": ["inputs/*", "outputs/*"]}}
    assert allowed["sagemaker:InvokeEndpoint"] == {
        f"arn:<AWS::Partition>:sagemaker:<AWS::Region>:<AWS::AccountId>:{kind}/"
        f"modelway-{each_env.name}-*"
        for kind in ("endpoint", "inference-component")
    }
    assert not any(a.startswith("sagemaker:Create") for a in allowed)
    assert allowed["lambda:InvokeFunction"] == {
        f"arn:<AWS::Partition>:lambda:<AWS::Region>:<AWS::AccountId>:function:"
        f"modelway-{each_env.name}-batch"
    }
    dlq = each_env.logical_id(stack.batch.dead_letter_queue)
    assert allowed["sqs:SendMessage"] == {f"<{dlq}.Arn>"}


def _autoscaling_calls() -> set[str]:
    """The Application Auto Scaling actions ``functions.core.deploy.autoscaling`` calls, read
    from its source (client methods and paginators), as IAM action names."""
    import inspect
    import re

    from functions.core.deploy import autoscaling

    source = inspect.getsource(autoscaling)
    methods = set(re.findall(r"self\._aas\.(\w+)", source)) - {"get_paginator"}
    methods |= set(re.findall(r'get_paginator\("(\w+)"\)', source))
    return {
        "application-autoscaling:" + "".join(part.title() for part in m.split("_")) for m in methods
    }


def test_router_may_autoscale_variants_with_exactly_the_calls_the_deployer_makes(
    each_env: Synthesized,
) -> None:
    stack = each_env.stack
    policy = role_policy(each_env, stack.api.router_function.role)
    allowed = grants(policy)
    granted = {a for a in allowed if a.startswith("application-autoscaling:")}
    assert granted == _autoscaling_calls()
    assert granted >= {
        "application-autoscaling:RegisterScalableTarget",
        "application-autoscaling:PutScalingPolicy",
        "application-autoscaling:DeregisterScalableTarget",
    }
    # Target tracking creates and deletes its alarms as the caller: only the alarms of this
    # environment's variants and inference components, and the components' scale-from-zero
    # alarms (deploy/component_scaling.py).
    arn = "arn:<AWS::Partition>:cloudwatch:<AWS::Region>:<AWS::AccountId>:alarm:"
    alarms = {
        f"{arn}TargetTracking-endpoint/modelway-{each_env.name}-*",
        f"{arn}TargetTracking-inference-component/modelway-{each_env.name}-*",
        f"{arn}modelway-{each_env.name}-*-no-capacity",
    }
    assert allowed["cloudwatch:DeleteAlarms"] == alarms
    # PutMetricAlarm also for the models' own rollback alarms (test_infra_monitoring).
    assert allowed["cloudwatch:PutMetricAlarm"] == {
        *alarms,
        f"{arn}modelway-{each_env.name}-*-rollback",
    }
    # The first registration creates Application Auto Scaling's role for SageMaker endpoints.
    (slr,) = [s for s in policy if "iam:CreateServiceLinkedRole" in as_list(s["Action"])]
    assert slr["Condition"] == {
        "StringEquals": {"iam:AWSServiceName": "sagemaker.application-autoscaling.amazonaws.com"}
    }
    assert flat(slr["Resource"]).endswith(
        ":role/aws-service-role/sagemaker.application-autoscaling.amazonaws.com/"
        "AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint"
    )


def test_endpoint_events_function_continues_deployments_and_nothing_else(
    each_env: Synthesized,
) -> None:
    """It gives variants their autoscaling and makes the alias moves that waited for an
    update (pending moves in the table), starting the next endpoint change when needed: the
    router's deployment rights and the table, but no data, invocation or keys."""
    stack = each_env.stack
    policy = role_policy(each_env, stack.endpoint_events.function.role)
    allowed = grants(policy)
    router = grants(role_policy(each_env, stack.api.router_function.role))
    sagemaker = {a for a in allowed if a.startswith("sagemaker:")}
    # Not the Model Registry mirror: only the router's publish / approve / reject write it.
    assert sagemaker == {a for a in router if a.startswith("sagemaker:")} - {
        "sagemaker:InvokeEndpoint",
        *MODEL_REGISTRY_ACTIONS,
    }
    assert "sagemaker:UpdateEndpointWeightsAndCapacities" in sagemaker  # SageMaker's prerequisite
    table = each_env.logical_id(stack.storage.table)
    assert allowed["dynamodb:UpdateItem"] == {f"<{table}.Arn>", f"<{table}.Arn>/index/gsi1"}
    granted = {a for a in allowed if a.startswith("application-autoscaling:")}
    assert granted == _autoscaling_calls()
    dlq = each_env.logical_id(stack.endpoint_events.dead_letter_queue)
    assert allowed["sqs:SendMessage"] == {f"<{dlq}.Arn>"}
    assert not any(a.startswith(("s3:", "lambda:", "apigateway:")) for a in allowed)
    assert "sagemaker:InvokeEndpoint" not in allowed
    (pass_role,) = [s for s in policy if "iam:PassRole" in as_list(s["Action"])]
    assert pass_role["Condition"] == {
        "StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}
    }


def test_autoscaling_writes_are_limited_to_sagemaker_targets(each_env: Synthesized) -> None:
    """Not ``*``: only SageMaker variants' and inference components' scalable targets of this
    account and region; Describe* (no resource-level permissions) stay on ``*``."""
    stack = each_env.stack
    for role in (stack.api.router_function.role, stack.endpoint_events.function.role):
        for statement in role_policy(each_env, role):
            writes = [
                a
                for a in as_list(statement["Action"])
                if a.startswith("application-autoscaling:") and ":Describe" not in a
            ]
            if not writes:
                continue
            assert [flat(r) for r in as_list(statement["Resource"])] == [
                "arn:<AWS::Partition>:application-autoscaling:<AWS::Region>:<AWS::AccountId>:"
                "scalable-target/*"
            ]
            assert statement["Condition"] == {
                "StringEquals": {
                    "application-autoscaling:service-namespace": "sagemaker",
                    "application-autoscaling:scalable-dimension": [
                        "sagemaker:variant:DesiredInstanceCount",
                        "sagemaker:inference-component:DesiredCopyCount",
                    ],
                }
            }


def test_router_may_take_keys_off_its_usage_plans_and_flush_its_authorizer(
    dev: Synthesized,
) -> None:
    allowed = grants(role_policy(dev, dev.stack.api.router_function.role))
    deletes = allowed["apigateway:DELETE"]
    base = "arn:<AWS::Partition>:apigateway:<AWS::Region>::"
    plans = {dev.logical_id(plan) for plan in dev.stack.api.usage_plans.values()}
    assert {f"{base}/usageplans/<{plan}>/keys/*" for plan in plans} <= deletes
    api = dev.logical_id(dev.stack.api.rest_api)
    assert f"{base}/restapis/<{api}>/stages/dev/cache/authorizers" in deletes
