"""What IAM asks of one AWS call: the actions, on which resource ARNs, with which condition
context (AWS's Service Authorization Reference, and each service's documented dependent
actions). A call of an operation not listed here is an error, so that a new kind of call
cannot pass the proof unexamined.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from tests.iam_proof.policy import ACCOUNT, PARTITION, REGION

# A scalable target's ARN carries an id Application Auto Scaling generates; any id will do.
SCALABLE_TARGET_ARN = (
    f"arn:{PARTITION}:application-autoscaling:{REGION}:{ACCOUNT}:"
    "scalable-target/0123456789abcdef0123456789abcdef"
)
AUTOSCALING_SLR = (
    f"arn:{PARTITION}:iam::{ACCOUNT}:role/aws-service-role/"
    "sagemaker.application-autoscaling.amazonaws.com/"
    "AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint"
)
S3_MISSING = {"NoSuchKey", "NoSuchVersion", "404", "NotFound"}


@dataclass(frozen=True)
class Need:
    action: str
    resource: str
    context: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Call:
    """One captured call: botocore's service name, operation, the caller's parameters and
    the outcome (the parsed response, or the error code)."""

    service: str
    operation: str
    params: Mapping[str, Any]
    response: Mapping[str, Any] | None = None
    error_code: str | None = None
    http_method: str = ""
    request_uri: str = ""
    uri_params: Mapping[str, str] = field(default_factory=dict)

    def describe(self) -> str:
        shown = {k: v for k, v in self.params.items() if k not in ("Body", "Item", "Payload")}
        text = ", ".join(f"{k}={v!r}" for k, v in shown.items())
        if len(text) > 300:
            text = text[:300] + "…"
        return f"{self.service}.{self.operation}({text})"


class Unmodelled(LookupError):
    """A call the proof has no IAM mapping for."""


Rename = Callable[[str], str]


def needs(call: Call, *, rename: Rename = lambda name: name) -> list[Need]:
    """The permissions ``call`` needs; ``rename`` maps a test's SageMaker resource names to
    the environment's (tests name things ``modelway-test-…``)."""
    mapper = _MAPPERS.get(call.service)
    if mapper is None:
        raise Unmodelled(f"no IAM mapping for service {call.service!r} ({call.describe()})")
    return mapper(call, rename)


# S3 ---------------------------------------------------------------------------------------
def _object(bucket: str, key: str) -> str:
    return f"arn:{PARTITION}:s3:::{bucket}/{key}"


def _bucket(bucket: str) -> str:
    return f"arn:{PARTITION}:s3:::{bucket}"


def _s3(call: Call, _: Rename) -> list[Need]:
    p = call.params
    op = call.operation
    bucket = str(p.get("Bucket", ""))
    key = str(p.get("Key", ""))
    if op in ("GetObject", "HeadObject"):
        action = "s3:GetObjectVersion" if p.get("VersionId") else "s3:GetObject"
        out = [Need(action, _object(bucket, key))]
        if call.error_code in S3_MISSING:
            # S3 answers 404 for a missing object only to callers allowed to list the
            # bucket; anyone else gets 403 AccessDenied (GetObject, "Permissions").
            out.append(Need("s3:ListBucket", _bucket(bucket), {"s3:prefix": key}))
        return out
    if op in ("PutObject", "CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload"):
        return [Need("s3:PutObject", _object(bucket, key))]
    if op == "AbortMultipartUpload":
        return [Need("s3:AbortMultipartUpload", _object(bucket, key))]
    if op == "ListParts":
        return [Need("s3:ListMultipartUploadParts", _object(bucket, key))]
    if op in ("CopyObject", "UploadPartCopy"):
        source_bucket, source_key, version = _copy_source(p["CopySource"])
        read = "s3:GetObjectVersion" if version else "s3:GetObject"
        return [
            Need("s3:PutObject", _object(bucket, key)),
            Need(read, _object(source_bucket, source_key)),
        ]
    if op == "DeleteObject":
        action = "s3:DeleteObjectVersion" if p.get("VersionId") else "s3:DeleteObject"
        return [Need(action, _object(bucket, key))]
    if op in ("ListObjectsV2", "ListObjects"):
        return [Need("s3:ListBucket", _bucket(bucket), {"s3:prefix": str(p.get("Prefix", ""))})]
    if op == "ListObjectVersions":
        return [
            Need("s3:ListBucketVersions", _bucket(bucket), {"s3:prefix": str(p.get("Prefix", ""))})
        ]
    if op == "ListMultipartUploads":
        return [Need("s3:ListBucketMultipartUploads", _bucket(bucket))]
    if op == "HeadBucket":
        return [Need("s3:ListBucket", _bucket(bucket))]
    raise Unmodelled(call.describe())


def _copy_source(source: Any) -> tuple[str, str, str | None]:
    if isinstance(source, Mapping):
        return str(source["Bucket"]), str(source["Key"]), source.get("VersionId")
    text, _, query = str(source).lstrip("/").partition("?versionId=")
    bucket, _, key = text.partition("/")
    return bucket, key, query or None


# DynamoDB ---------------------------------------------------------------------------------
def _table(name: str, index: str | None = None) -> str:
    arn = f"arn:{PARTITION}:dynamodb:{REGION}:{ACCOUNT}:table/{name}"
    return f"{arn}/index/{index}" if index else arn


_TRANSACT = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
    "Get": "GetItem",
}


def _dynamodb(call: Call, _: Rename) -> list[Need]:
    p = call.params
    op = call.operation
    if op in ("GetItem", "PutItem", "UpdateItem", "DeleteItem", "Scan", "Query", "DescribeTable"):
        return [Need(f"dynamodb:{op}", _table(p["TableName"], p.get("IndexName")))]
    if op in ("BatchGetItem", "BatchWriteItem"):
        return [Need(f"dynamodb:{op}", _table(t)) for t in p["RequestItems"]]
    if op in ("TransactWriteItems", "TransactGetItems"):
        out = []
        for item in p["TransactItems"]:
            ((kind, body),) = item.items()
            out.append(Need(f"dynamodb:{_TRANSACT[kind]}", _table(body["TableName"])))
        return out
    raise Unmodelled(call.describe())


# API Gateway: the action is the HTTP method, the resource the request path -----------------
def _apigateway(call: Call, _: Rename) -> list[Need]:
    path = call.request_uri.split("?", 1)[0]
    for name, value in call.uri_params.items():
        path = path.replace("{" + name + "}", quote(str(value), safe=""))
    if "{" in path:
        raise Unmodelled(f"unfilled path parameter in {path} ({call.describe()})")
    base = f"arn:{PARTITION}:apigateway:{REGION}::"
    out = [Need(f"apigateway:{call.http_method}", f"{base}{path}")]
    tags = call.params.get("tags")
    if tags:
        # Tag on create: API Gateway also authorizes the tagging, on the new resource's ARN.
        created = (call.response or {}).get("id", "new")
        arn = quote(f"{base}{path}/{created}", safe="")
        out.append(Need("apigateway:PUT", f"{base}/tags/{arn}", {"aws:TagKeys": list(tags)}))
    return out


# SageMaker --------------------------------------------------------------------------------
def _sm(kind: str, name: str, rename: Rename) -> str:
    # SageMaker writes resource names in ARNs in lower case.
    return f"arn:{PARTITION}:sagemaker:{REGION}:{ACCOUNT}:{kind}/{rename(name).lower()}"


_SAGEMAKER_RESOURCES: dict[str, tuple[tuple[str, str], ...]] = {
    # operation: ((resource type, parameter naming it), ...)
    "CreateModel": (("model", "ModelName"),),
    "DescribeModel": (("model", "ModelName"),),
    "DeleteModel": (("model", "ModelName"),),
    "CreateEndpointConfig": (("endpoint-config", "EndpointConfigName"),),
    "DescribeEndpointConfig": (("endpoint-config", "EndpointConfigName"),),
    "DeleteEndpointConfig": (("endpoint-config", "EndpointConfigName"),),
    "CreateEndpoint": (("endpoint", "EndpointName"), ("endpoint-config", "EndpointConfigName")),
    "UpdateEndpoint": (("endpoint", "EndpointName"), ("endpoint-config", "EndpointConfigName")),
    "DescribeEndpoint": (("endpoint", "EndpointName"),),
    "DeleteEndpoint": (("endpoint", "EndpointName"),),
    "UpdateEndpointWeightsAndCapacities": (("endpoint", "EndpointName"),),
    "CreateInferenceComponent": (
        ("inference-component", "InferenceComponentName"),
        ("endpoint", "EndpointName"),
    ),
    "UpdateInferenceComponent": (("inference-component", "InferenceComponentName"),),
    "UpdateInferenceComponentRuntimeConfig": (("inference-component", "InferenceComponentName"),),
    "DescribeInferenceComponent": (("inference-component", "InferenceComponentName"),),
    "DeleteInferenceComponent": (("inference-component", "InferenceComponentName"),),
}
_SAGEMAKER_LIST = {"ListEndpoints", "ListModels", "ListEndpointConfigs", "ListInferenceComponents"}
_CREATED_BY = {
    "CreateModel": "model",
    "CreateEndpointConfig": "endpoint-config",
    "CreateEndpoint": "endpoint",
    "CreateInferenceComponent": "inference-component",
}


def _model_package(value: str, rename: Rename) -> str:
    """A versioned model package's ARN (``model-package/{group}/{n}``), from its ARN or
    ``group/n`` name, with the group renamed to the environment's."""
    name = value.split(":model-package/", 1)[1] if value.startswith("arn:") else value
    group, _, number = name.partition("/")
    return _sm("model-package", f"{rename(group)}/{number or '*'}", lambda n: n)


def _model_registry(call: Call, rename: Rename) -> list[Need] | None:
    """The Model Registry mirror's calls (``functions.core.mirror``); None for other calls.
    A package's ARN is the one SageMaker gives it (``model-package/{group}/{n}``): for
    CreateModelPackage the response's, or the group's next number when it failed."""
    p = call.params
    op = call.operation
    if op == "CreateModelPackageGroup":
        group = _sm("model-package-group", str(p["ModelPackageGroupName"]), rename)
        return [Need("sagemaker:CreateModelPackageGroup", group)]
    if op == "CreateModelPackage":
        created = (call.response or {}).get("ModelPackageArn")
        target = str(created or f"{p['ModelPackageGroupName']}/0")
        return [Need("sagemaker:CreateModelPackage", _model_package(target, rename))]
    if op in ("DescribeModelPackage", "UpdateModelPackage"):
        name = str(p.get("ModelPackageName") or p.get("ModelPackageArn"))
        return [Need(f"sagemaker:{op}", _model_package(name, rename))]
    if op == "ListModelPackages":
        return [Need("sagemaker:ListModelPackages", "*")]
    return None


def _sagemaker(call: Call, rename: Rename) -> list[Need]:
    p = call.params
    op = call.operation
    if op in _SAGEMAKER_LIST:
        return [Need(f"sagemaker:{op}", "*")]
    registry = _model_registry(call, rename)
    if registry is not None:
        return registry
    if op == "AddTags":
        return [Need("sagemaker:AddTags", str(p["ResourceArn"]))]
    if op not in _SAGEMAKER_RESOURCES:
        raise Unmodelled(call.describe())
    out = [
        Need(f"sagemaker:{op}", _sm(kind, str(p[param]), rename))
        for kind, param in _SAGEMAKER_RESOURCES[op]
        if p.get(param)
    ]
    if op == "CreateModel" and p.get("ExecutionRoleArn"):
        out.append(
            Need(
                "iam:PassRole",
                str(p["ExecutionRoleArn"]),
                {"iam:PassedToService": "sagemaker.amazonaws.com"},
            )
        )
    if op in _CREATED_BY and p.get("Tags"):
        # Tagging on create is authorized as sagemaker:AddTags on the new resource.
        kind, param = _SAGEMAKER_RESOURCES[op][0]
        out.append(Need("sagemaker:AddTags", _sm(kind, str(p[param]), rename)))
    return out


def _sagemaker_runtime(call: Call, rename: Rename) -> list[Need]:
    if call.operation not in ("InvokeEndpoint", "InvokeEndpointWithResponseStream"):
        raise Unmodelled(call.describe())
    out = [Need("sagemaker:InvokeEndpoint", _sm("endpoint", call.params["EndpointName"], rename))]
    component = call.params.get("InferenceComponentName")
    if component:
        # Invoking a component is authorized on the component as well as on its endpoint.
        out.append(Need("sagemaker:InvokeEndpoint", _sm("inference-component", component, rename)))
    return out


# Application Auto Scaling -----------------------------------------------------------------
def _autoscaling(call: Call, rename: Rename) -> list[Need]:
    p = call.params
    op = call.operation
    if op.startswith("Describe"):
        return [Need(f"application-autoscaling:{op}", "*")]
    if op not in (
        "RegisterScalableTarget",
        "DeregisterScalableTarget",
        "PutScalingPolicy",
        "DeleteScalingPolicy",
    ):
        raise Unmodelled(call.describe())
    context = {
        "application-autoscaling:service-namespace": str(p["ServiceNamespace"]),
        "application-autoscaling:scalable-dimension": str(p["ScalableDimension"]),
    }
    out = [Need(f"application-autoscaling:{op}", SCALABLE_TARGET_ARN, context)]
    resource_id = _rename_resource_id(str(p["ResourceId"]), rename)
    if op == "RegisterScalableTarget" and p["ServiceNamespace"] == "sagemaker":
        # Application Auto Scaling checks that the caller may describe and resize what it
        # scales (SageMaker's autoscaling prerequisites), and creates its role the first time.
        parts = resource_id.split("/")
        if parts[0] == "endpoint":
            endpoint = _sm("endpoint", parts[1], lambda n: n)
            out += [
                Need("sagemaker:DescribeEndpoint", endpoint),
                Need("sagemaker:UpdateEndpointWeightsAndCapacities", endpoint),
            ]
        elif parts[0] == "inference-component":
            component = _sm("inference-component", parts[1], lambda n: n)
            out += [
                Need("sagemaker:DescribeInferenceComponent", component),
                Need("sagemaker:UpdateInferenceComponentRuntimeConfig", component),
            ]
        out.append(
            Need(
                "iam:CreateServiceLinkedRole",
                AUTOSCALING_SLR,
                {"iam:AWSServiceName": "sagemaker.application-autoscaling.amazonaws.com"},
            )
        )
    tracking = (
        op == "PutScalingPolicy" and p.get("PolicyType", "StepScaling") == "TargetTrackingScaling"
    )
    if tracking or op == "DeleteScalingPolicy":
        # Target tracking creates and deletes its alarms as the caller.
        alarm = (
            f"arn:{PARTITION}:cloudwatch:{REGION}:{ACCOUNT}:alarm:"
            f"TargetTracking-{resource_id}-AlarmHigh-00000000-0000-0000-0000-000000000000"
        )
        actions = (
            ["cloudwatch:PutMetricAlarm", "cloudwatch:DescribeAlarms"]
            if tracking
            else ["cloudwatch:DeleteAlarms", "cloudwatch:DescribeAlarms"]
        )
        out += [Need(action, alarm) for action in actions]
    return out


def _rename_resource_id(resource_id: str, rename: Rename) -> str:
    parts = resource_id.split("/")
    if len(parts) >= 2:
        parts[1] = rename(parts[1])
    return "/".join(parts)


# CloudWatch, Lambda -----------------------------------------------------------------------
def _cloudwatch(call: Call, rename: Rename) -> list[Need]:
    base = f"arn:{PARTITION}:cloudwatch:{REGION}:{ACCOUNT}:alarm:"
    p = call.params
    if call.operation == "PutMetricAlarm":
        return [Need("cloudwatch:PutMetricAlarm", base + rename(str(p["AlarmName"])))]
    if call.operation == "DeleteAlarms":
        return [Need("cloudwatch:DeleteAlarms", base + rename(str(n))) for n in p["AlarmNames"]]
    if call.operation == "DescribeAlarms":
        names = p.get("AlarmNames") or []
        return [Need("cloudwatch:DescribeAlarms", base + rename(str(n))) for n in names] or [
            Need("cloudwatch:DescribeAlarms", "*")
        ]
    raise Unmodelled(call.describe())


def _lambda(call: Call, _: Rename) -> list[Need]:
    if call.operation != "Invoke":
        raise Unmodelled(call.describe())
    name = str(call.params["FunctionName"])
    arn = (
        name
        if name.startswith("arn:")
        else (f"arn:{PARTITION}:lambda:{REGION}:{ACCOUNT}:function:{name}")
    )
    return [Need("lambda:InvokeFunction", arn)]


_MAPPERS: dict[str, Callable[[Call, Rename], list[Need]]] = {
    "s3": _s3,
    "dynamodb": _dynamodb,
    "apigateway": _apigateway,
    "sagemaker": _sagemaker,
    "sagemaker-runtime": _sagemaker_runtime,
    "application-autoscaling": _autoscaling,
    "cloudwatch": _cloudwatch,
    "lambda": _lambda,
}
