"""Helpers for the infra tests: the synthesized templates and ways to look into them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from aws_cdk.assertions import Template

from tests.iam_proof.proof import cdk_context

REPO_ROOT = Path(__file__).resolve().parents[2]
ENVIRONMENTS = ("dev", "staging", "prod")


@dataclass(frozen=True)
class Synthesized:
    name: str
    stack: Any  # infra.stacks.modelway_stack.ModelwayStack
    template: dict[str, Any]
    template_path: Path
    outdir: Path

    @cached_property
    def assertions(self) -> Template:
        """``aws_cdk.assertions`` over the synthesized template."""
        return Template.from_json(self.template)

    @property
    def resources(self) -> dict[str, dict[str, Any]]:
        return dict(self.template["Resources"])

    def of_type(self, cfn_type: str) -> dict[str, dict[str, Any]]:
        return {k: r for k, r in self.resources.items() if r["Type"] == cfn_type}

    def one(self, cfn_type: str) -> dict[str, Any]:
        (resource,) = self.of_type(cfn_type).values()
        return resource

    def logical_id(self, construct: Any) -> str:
        return str(self.stack.resolve(construct.node.default_child.logical_id))


__all__ = ["cdk_context"]


def environment_config(env: str) -> Any:
    from infra.config import load_environment

    return load_environment(cdk_context(None)["environments"], env)


def statements(synth: Synthesized) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every IAM statement of the template, with the logical id of its policy."""
    for logical_id, resource in synth.resources.items():
        if resource["Type"] == "AWS::IAM::Policy":
            for statement in resource["Properties"]["PolicyDocument"]["Statement"]:
                yield logical_id, statement
        elif resource["Type"] == "AWS::IAM::Role":
            for policy in resource["Properties"].get("Policies", []):
                for statement in policy["PolicyDocument"]["Statement"]:
                    yield logical_id, statement


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def flat(value: Any) -> str:
    """A CloudFormation value as one string (``<Logical.Arn>``-style references)."""
    from infra.constructs.nag import flatten_cfn_reference

    return flatten_cfn_reference(value)


def text(value: Any) -> str:
    """A CloudFormation string as text, joins joined and references as ``<Ref>``."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "Fn::Join" in value:
        delimiter, items = value["Fn::Join"]
        return str(delimiter).join(text(item) for item in items)
    if isinstance(value, dict) and "Ref" in value:
        return f"<{value['Ref']}>"
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        return "<{}.{}>".format(*value["Fn::GetAtt"])
    return json.dumps(value)


def role_policy(synth: Synthesized, role: Any) -> list[dict[str, Any]]:
    """The statements of the default policy attached to ``role`` (an iam.Role)."""
    role_id = synth.logical_id(role)
    found: list[dict[str, Any]] = []
    for resource in synth.of_type("AWS::IAM::Policy").values():
        roles = resource["Properties"].get("Roles", [])
        if {"Ref": role_id} in roles:
            found.extend(resource["Properties"]["PolicyDocument"]["Statement"])
    return found


def grants(statements_: list[dict[str, Any]]) -> dict[str, set[str]]:
    """action -> the flattened resources it is allowed on."""
    out: dict[str, set[str]] = {}
    for statement in statements_:
        if statement.get("Effect") != "Allow":
            continue
        for action in as_list(statement["Action"]):
            out.setdefault(action, set()).update(flat(r) for r in as_list(statement["Resource"]))
    return out


def env_vars(function: dict[str, Any]) -> dict[str, Any]:
    return dict(function["Properties"]["Environment"]["Variables"])


def function_named(synth: Synthesized, name: str) -> dict[str, Any]:
    for resource in synth.of_type("AWS::Lambda::Function").values():
        if resource["Properties"].get("FunctionName") == name:
            return resource
    raise AssertionError(f"no function named {name}")


def is_cdk_internal(logical_id: str) -> bool:
    return logical_id.startswith(("BucketNotificationsHandler", "CustomS3AutoDeleteObjects"))
