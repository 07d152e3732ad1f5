"""The IAM proof's own evaluator (``tests/iam_proof``): it must deny what IAM denies, or the
proof proves nothing."""

from __future__ import annotations

from typing import Any

import pytest

from tests.iam_proof.needs import Call, needs
from tests.iam_proof.policy import Template, Unresolvable, allowed

pytestmark = pytest.mark.infra

BUCKET = "DataBucket"


def template(*statements: dict[str, Any]) -> Template:
    return Template(
        {
            "Resources": {
                BUCKET: {"Type": "AWS::S3::Bucket", "Properties": {}},
                "Role": {"Type": "AWS::IAM::Role", "Properties": {}},
                "Fn": {
                    "Type": "AWS::Lambda::Function",
                    "Properties": {"Handler": "h.handler", "Role": {"Fn::GetAtt": ["Role", "Arn"]}},
                },
                "Policy": {
                    "Type": "AWS::IAM::Policy",
                    "Properties": {
                        "Roles": [{"Ref": "Role"}],
                        "PolicyDocument": {"Statement": list(statements)},
                    },
                },
            }
        }
    )


def objects(prefix: str) -> dict[str, Any]:
    return {"Fn::Join": ["", [{"Fn::GetAtt": [BUCKET, "Arn"]}, f"/{prefix}*"]]}


def verdicts(t: Template, call: Call) -> list[bool]:
    statements = t.statements(t.role_of_function("h.handler"))
    return [
        allowed(statements, action=n.action, resource=n.resource, context=n.context)
        for n in needs(call)
    ]


def test_a_versioned_read_needs_get_object_version_and_a_miss_needs_list_bucket() -> None:
    read = {"Effect": "Allow", "Action": "s3:GetObject", "Resource": objects("inputs/")}
    call = Call("s3", "GetObject", {"Bucket": "b-1", "Key": "inputs/a.jsonl", "VersionId": "v1"})
    assert verdicts(template(read), call) == [False]
    versioned = {**read, "Action": ["s3:GetObject", "s3:GetObjectVersion"]}
    assert verdicts(template(versioned), call) == [True]
    # Outside the granted prefix, and a miss without s3:ListBucket.
    other = Call("s3", "GetObject", {"Bucket": "b-1", "Key": "outputs/a", "VersionId": "v1"})
    assert verdicts(template(versioned), other) == [False]
    gone = Call("s3", "GetObject", {**call.params}, error_code="NoSuchVersion")
    assert verdicts(template(versioned), gone) == [True, False]
    listing = {
        "Effect": "Allow",
        "Action": "s3:ListBucket",
        "Resource": {"Fn::GetAtt": [BUCKET, "Arn"]},
        "Condition": {"StringLike": {"s3:prefix": ["inputs/*"]}},
    }
    assert verdicts(template(versioned, listing), gone) == [True, True]


def test_api_gateway_calls_are_methods_on_paths_and_a_deny_wins() -> None:
    grant = {
        "Effect": "Allow",
        "Action": "apigateway:DELETE",
        "Resource": {
            "Fn::Join": [
                "",
                [
                    "arn:",
                    {"Ref": "AWS::Partition"},
                    ":apigateway:",
                    {"Ref": "AWS::Region"},
                    "::/apikeys/*",
                ],
            ]
        },
    }
    call = Call(
        "apigateway",
        "DeleteUsagePlanKey",
        {"usagePlanId": "p1", "keyId": "k1"},
        http_method="DELETE",
        request_uri="/usageplans/{usageplanId}/keys/{keyId}",
        uri_params={"usageplanId": "p1", "keyId": "k1"},
    )
    assert verdicts(template(grant), call) == [False]
    delete_key = {**grant, "Resource": "arn:aws:apigateway:us-east-1::/usageplans/*/keys/*"}
    assert verdicts(template(grant, delete_key), call) == [True]
    deny = {**delete_key, "Effect": "Deny"}
    assert verdicts(template(grant, delete_key, deny), call) == [False]


def test_conditions_are_evaluated_and_unknown_operators_refused() -> None:
    register = {
        "Effect": "Allow",
        "Action": "application-autoscaling:RegisterScalableTarget",
        "Resource": "arn:aws:application-autoscaling:us-east-1:123456789012:scalable-target/*",
        "Condition": {"StringEquals": {"application-autoscaling:service-namespace": "sagemaker"}},
    }
    call = Call(
        "application-autoscaling",
        "RegisterScalableTarget",
        {
            "ServiceNamespace": "ecs",
            "ResourceId": "service/c/s",
            "ScalableDimension": "ecs:service:DesiredCount",
        },
    )
    assert verdicts(template(register), call) == [False]
    odd = {**register, "Condition": {"NumericLessThan": {"aws:MultiFactorAuthAge": "3600"}}}
    with pytest.raises(Unresolvable):
        verdicts(template(odd), call)
