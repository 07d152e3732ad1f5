"""A small evaluator of the synthesized template's IAM statements.

It answers one question: does the role of function F allow ``action`` on ``resource`` with
this request context? Only identity policies attached to the role count (that is where the
stack grants everything its functions do); an explicit Deny wins over any Allow, as in IAM.

CloudFormation values are resolved against the template with a fixed fake account and region
(``ACCOUNT``, ``REGION``): pseudo parameters become those, ``Fn::Join``/``Fn::Select``/
``Fn::Split`` are evaluated, and a ``Ref``/``Fn::GetAtt`` of a resource whose physical name the
template leaves to CloudFormation (the data bucket, the table, a usage plan's id) becomes a
*name placeholder* that matches exactly one name (no ``/`` or ``:``), so a grant on
``<bucket>/inputs/*`` stays a grant on one bucket's ``inputs/`` prefix. Names the template
spells out (function names, log groups, SageMaker name prefixes) are compared literally.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

ACCOUNT = "123456789012"
REGION = "us-east-1"
PARTITION = "aws"
# One CloudFormation-generated physical name or id: a bucket, a table, a usage plan id.
NAME = "\x00"
_NAME_RE = r"[A-Za-z0-9._\-]+"

PSEUDO = {
    "AWS::Partition": PARTITION,
    "AWS::Region": REGION,
    "AWS::AccountId": ACCOUNT,
    "AWS::URLSuffix": "amazonaws.com",
    "AWS::NoValue": "",
}


class Unresolvable(ValueError):
    """A template value this evaluator does not know how to read (say which, and extend it)."""


@dataclass(frozen=True)
class Statement:
    effect: str
    actions: tuple[str, ...]
    resources: tuple[str, ...]  # resolved patterns (``*``, ``?``, NAME placeholders)
    conditions: Mapping[str, Mapping[str, tuple[str, ...]]] = field(default_factory=dict)
    source: str = ""

    def matches_action(self, action: str) -> bool:
        return any(fnmatch.fnmatchcase(action.lower(), a.lower()) for a in self.actions)

    def matches_resource(self, resource: str) -> bool:
        return any(_pattern(r).fullmatch(resource) for r in self.resources)


class Template:
    """The resources of one synthesized stack, with values resolved as described above."""

    def __init__(self, template: Mapping[str, Any]) -> None:
        self.resources: dict[str, dict[str, Any]] = dict(template["Resources"])

    # Values -------------------------------------------------------------------------------
    def resolve(self, node: Any) -> str:
        if isinstance(node, str):
            return node
        if isinstance(node, (int, float)) and not isinstance(node, bool):
            return str(node)
        if isinstance(node, Mapping) and len(node) == 1:
            ((fn, arg),) = node.items()
            if fn == "Ref":
                return self._ref(str(arg))
            if fn == "Fn::GetAtt":
                logical, attribute = arg if isinstance(arg, list) else str(arg).split(".", 1)
                return self._get_att(str(logical), str(attribute))
            if fn == "Fn::Join":
                delimiter, items = arg
                return str(delimiter).join(self.resolve(item) for item in items)
            if fn == "Fn::Select":
                index, items = arg
                values = self._list(items)
                return values[int(self.resolve(index))]
        raise Unresolvable(f"cannot resolve {node!r}")

    def _list(self, node: Any) -> list[str]:
        if isinstance(node, list):
            return [self.resolve(item) for item in node]
        if isinstance(node, Mapping) and "Fn::Split" in node:
            delimiter, value = node["Fn::Split"]
            return self.resolve(value).split(str(delimiter))
        raise Unresolvable(f"cannot resolve a list from {node!r}")

    def _resource(self, logical: str) -> dict[str, Any]:
        try:
            return self.resources[logical]
        except KeyError:
            raise Unresolvable(f"no resource {logical!r} in the template") from None

    def _name(self, logical: str, prop: str) -> str:
        value = self._resource(logical).get("Properties", {}).get(prop)
        return NAME if value is None else self.resolve(value)

    def _ref(self, logical: str) -> str:
        if logical in PSEUDO:
            return PSEUDO[logical]
        kind = self._resource(logical)["Type"]
        names = {
            "AWS::S3::Bucket": "BucketName",
            "AWS::DynamoDB::Table": "TableName",
            "AWS::IAM::Role": "RoleName",
            "AWS::Lambda::Function": "FunctionName",
            "AWS::Logs::LogGroup": "LogGroupName",
            "AWS::SQS::Queue": "QueueName",
        }
        if kind in names:
            return self._name(logical, names[kind])
        if kind.startswith("AWS::ApiGateway::"):
            return NAME  # ids API Gateway generates (rest api, usage plan, stage …)
        raise Unresolvable(f"Ref to {kind} ({logical})")

    def _get_att(self, logical: str, attribute: str) -> str:
        kind = self._resource(logical)["Type"]
        ref = self._ref(logical)
        arns = {
            "AWS::S3::Bucket": f"arn:{PARTITION}:s3:::{ref}",
            "AWS::DynamoDB::Table": f"arn:{PARTITION}:dynamodb:{REGION}:{ACCOUNT}:table/{ref}",
            "AWS::IAM::Role": f"arn:{PARTITION}:iam::{ACCOUNT}:role/{ref}",
            "AWS::Lambda::Function": f"arn:{PARTITION}:lambda:{REGION}:{ACCOUNT}:function:{ref}",
            "AWS::Logs::LogGroup": f"arn:{PARTITION}:logs:{REGION}:{ACCOUNT}:log-group:{ref}:*",
            "AWS::SQS::Queue": f"arn:{PARTITION}:sqs:{REGION}:{ACCOUNT}:{ref}",
        }
        if attribute == "Arn" and kind in arns:
            return arns[kind]
        if attribute == "RootResourceId" and kind == "AWS::ApiGateway::RestApi":
            return NAME
        raise Unresolvable(f"Fn::GetAtt {logical}.{attribute} ({kind})")

    # Roles ---------------------------------------------------------------------------------
    def role_of_function(self, handler: str) -> str:
        """The logical id of the role of the function whose handler is ``handler``."""
        found = [
            r["Properties"]["Role"]["Fn::GetAtt"][0]
            for r in self.resources.values()
            if r["Type"] == "AWS::Lambda::Function" and r["Properties"].get("Handler") == handler
        ]
        if len(found) != 1:
            raise Unresolvable(f"{len(found)} functions with handler {handler!r}")
        return str(found[0])

    def statements(self, role: str) -> list[Statement]:
        """Every statement of the identity policies attached to ``role`` (a logical id)."""
        documents: list[tuple[str, Mapping[str, Any]]] = []
        role_props = self._resource(role).get("Properties", {})
        if role_props.get("ManagedPolicyArns"):
            raise Unresolvable(f"{role} has managed policies; this evaluator reads none")
        for policy in role_props.get("Policies", []):
            documents.append((f"{role}/{policy.get('PolicyName')}", policy["PolicyDocument"]))
        for logical, resource in self.resources.items():
            if resource["Type"] != "AWS::IAM::Policy":
                continue
            if {"Ref": role} in resource["Properties"].get("Roles", []):
                documents.append((logical, resource["Properties"]["PolicyDocument"]))
        out: list[Statement] = []
        for source, document in documents:
            for raw in document["Statement"]:
                if "NotAction" in raw or "NotResource" in raw or "Principal" in raw:
                    raise Unresolvable(f"{source}: NotAction/NotResource/Principal unsupported")
                out.append(
                    Statement(
                        effect=raw["Effect"],
                        actions=tuple(_as_list(raw["Action"])),
                        resources=tuple(self.resolve(r) for r in _as_list(raw["Resource"])),
                        conditions={
                            op: {
                                k: tuple(self.resolve(v) for v in _as_list(vals))
                                for k, vals in body.items()
                            }
                            for op, body in raw.get("Condition", {}).items()
                        },
                        source=source,
                    )
                )
        return out


Context = Mapping[str, str | Sequence[str]]


def allowed(
    statements: Iterable[Statement], *, action: str, resource: str, context: Context
) -> bool:
    """IAM's answer for one request: some Allow matches and no Deny does."""
    verdict = False
    for statement in statements:
        if not (statement.matches_action(action) and statement.matches_resource(resource)):
            continue
        if not conditions_hold(statement.conditions, context):
            continue
        if statement.effect == "Deny":
            return False
        verdict = True
    return verdict


def conditions_hold(
    conditions: Mapping[str, Mapping[str, Sequence[str]]], context: Context
) -> bool:
    """Every operator block holds (IAM ANDs blocks and keys, ORs the values of one key)."""
    lowered = {k.lower(): v for k, v in context.items()}
    for operator, body in conditions.items():
        for key, expected in body.items():
            if not _condition(operator, lowered.get(key.lower()), list(expected)):
                return False
    return True


def _condition(operator: str, value: str | Sequence[str] | None, expected: list[str]) -> bool:
    qualifier, _, op = operator.rpartition(":")
    if_exists = op.endswith("IfExists")
    op = op.removesuffix("IfExists")
    compare = {
        "StringEquals": lambda v, e: v == e,
        "StringLike": lambda v, e: fnmatch.fnmatchcase(v, e),
        "ArnEquals": lambda v, e: v == e,
        "ArnLike": lambda v, e: fnmatch.fnmatchcase(v, e),
        "Bool": lambda v, e: v.lower() == e.lower(),
    }
    negated = {"StringNotEquals": "StringEquals", "StringNotLike": "StringLike"}
    if op in negated:
        return not _condition(
            negated[op] if not qualifier else f"{qualifier}:{negated[op]}", value, expected
        )
    if op not in compare:
        raise Unresolvable(f"condition operator {operator!r} is not modelled")
    test = compare[op]
    if qualifier == "ForAllValues":
        values = [] if value is None else _as_list(value)
        return all(any(test(v, e) for e in expected) for v in values)
    if qualifier == "ForAnyValue":
        values = [] if value is None else _as_list(value)
        return any(test(v, e) for v in values for e in expected)
    if value is None:
        return if_exists
    if not isinstance(value, str):
        raise Unresolvable(f"{operator} on a multi-valued key needs ForAllValues/ForAnyValue")
    return any(test(value, e) for e in expected)


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, (list, tuple)) else [value]


_PATTERNS: dict[str, re.Pattern[str]] = {}


def _pattern(resource: str) -> re.Pattern[str]:
    """An IAM resource pattern as a regex: ``*`` any run, ``?`` one character, NAME one name."""
    compiled = _PATTERNS.get(resource)
    if compiled is None:
        parts = []
        for char in resource:
            if char == "*":
                parts.append(".*")
            elif char == "?":
                parts.append(".")
            elif char == NAME:
                parts.append(_NAME_RE)
            else:
                parts.append(re.escape(char))
        compiled = _PATTERNS[resource] = re.compile("".join(parts), re.DOTALL)
    return compiled
