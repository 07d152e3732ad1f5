"""cdk-nag acknowledgements and the least-privilege statements that may need them.

cdk-nag v3 acknowledges findings through CDK's own ``Validations`` API, one finding id at a
time (``AwsSolutions-IAM5[Resource::<Bucket.Arn>/inputs/*]``). :func:`allow` adds a statement
to a role and acknowledges exactly the wildcard resources of that statement, with the reason
its caller must give, so a wildcard can never slip in unexplained.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from constructs import IConstruct


def acknowledge(scope: IConstruct, *, rule: str, reason: str) -> None:
    """Acknowledges ``rule`` (a cdk-nag finding id) on ``scope`` and everything below it."""
    if not reason.strip():
        raise ValueError(f"acknowledging {rule} needs a reason")
    cdk.Validations.of(scope).acknowledge(cdk.Acknowledgment(id=rule, reason=reason))


def allow(
    role: iam.IRole,
    *,
    actions: Sequence[str],
    resources: Sequence[str],
    conditions: Mapping[str, Any] | None = None,
    wildcard_reason: str | None = None,
) -> iam.PolicyStatement:
    """Grants ``actions`` on ``resources`` to ``role``.

    A resource with ``*`` in it (an object prefix, a name prefix) must come with
    ``wildcard_reason``; the matching cdk-nag findings are acknowledged with it.
    """
    if any("*" in action for action in actions):
        raise ValueError(f"wildcard actions are not allowed: {list(actions)}")
    statement = iam.PolicyStatement(
        actions=list(actions), resources=list(resources), conditions=dict(conditions or {})
    )
    role.add_to_principal_policy(statement)
    findings = wildcard_resource_findings(cdk.Stack.of(role), resources)
    if findings and not wildcard_reason:
        raise ValueError(f"{findings} need a wildcard_reason")
    for finding in findings:
        acknowledge(role, rule=f"AwsSolutions-IAM5[{finding}]", reason=wildcard_reason or "")
    return statement


def wildcard_resource_findings(stack: cdk.Stack, resources: Sequence[str]) -> list[str]:
    """The ``Resource::…`` findings cdk-nag's IAM5 rule reports for ``resources``."""
    flat = (flatten_cfn_reference(stack.resolve(resource)) for resource in resources)
    return sorted({f"Resource::{value}" for value in flat if "*" in value})


def flatten_cfn_reference(node: Any) -> str:
    """cdk-nag's rendering of a CloudFormation value, so finding ids can be computed here."""
    if node is None:
        return ""
    if isinstance(node, str):
        return node.replace("${", "<").replace("}", ">")
    if isinstance(node, Mapping) and len(node) == 1:
        ((fn, arg),) = node.items()
        if fn == "Fn::Join":
            delimiter, items = arg
            return delimiter.join(flatten_cfn_reference(item) for item in items)
        if fn in ("Fn::Sub", "Fn::ImportValue"):
            return flatten_cfn_reference(arg)
        if fn == "Fn::GetAtt":
            resource, attribute = arg
            return f"<{flatten_cfn_reference(resource)}.{flatten_cfn_reference(attribute)}>"
        if fn == "Ref":
            return f"<{flatten_cfn_reference(arg)}>"
    return json.dumps(node, separators=(",", ":"))
