"""Checks captured calls against the policies of the function that made them, in the
synthesized ``dev`` template (the other environments differ only in names and sizes; the
infra tests check that their policies have the same shape)."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from tests.iam_proof.needs import Call, Need, needs
from tests.iam_proof.policy import Statement, Template, allowed

REPO_ROOT = Path(__file__).resolve().parents[2]
ENV = "dev"
ENV_PREFIX = f"modelway-{ENV}"
# The prefixes tests give their environments; they stand for the checked environment's.
TEST_PREFIXES = ("modelway-test",)


@dataclass(frozen=True)
class Synth:
    stack: Any
    template: dict[str, Any]
    path: Path
    outdir: Path


def cdk_context(env: str | None) -> dict[str, Any]:
    """The context ``cdk synth -c env=…`` gives the app: cdk.json's, plus the choice."""
    context = dict(json.loads((REPO_ROOT / "cdk.json").read_text())["context"])
    if env is not None:
        context["env"] = env
    return context


@cache
def synthesize(env: str) -> Synth:
    """``cdk synth -c env=ENV``, environment-agnostic, once per test process."""
    import aws_cdk as cdk

    from infra.app import build

    saved = {v: os.environ.pop(v, None) for v in ("CDK_DEFAULT_ACCOUNT", "CDK_DEFAULT_REGION")}
    try:
        outdir = Path(tempfile.mkdtemp(prefix=f"modelway-cdk-{env}-"))
        app = cdk.App(context=cdk_context(env), outdir=str(outdir))
        stack = build(app)
        app.synth()
    finally:
        os.environ.update({k: v for k, v in saved.items() if v is not None})
    path = outdir / f"{stack.stack_name}.template.json"
    return Synth(stack=stack, template=json.loads(path.read_text()), path=path, outdir=outdir)


def rename(name: str) -> str:
    for prefix in TEST_PREFIXES:
        if name.startswith(prefix + "-"):
            return ENV_PREFIX + name[len(prefix) :]
    return name


@cache
def _template() -> Template:
    return Template(synthesize(ENV).template)


@cache
def role_statements(handler: str) -> tuple[Statement, ...]:
    template = _template()
    return tuple(template.statements(template.role_of_function(handler)))


@dataclass(frozen=True)
class Denied:
    function: str
    need: Need
    call: Call

    def __str__(self) -> str:
        context = f" with {dict(self.need.context)}" if self.need.context else ""
        return (
            f"{self.function.split('.')[1]} may not {self.need.action} on "
            f"{self.need.resource}{context}\n    needed by {self.call.describe()}"
        )


# Everything checked in this process: (function, action, resource) -> allowed.
CHECKED: dict[tuple[str, str, str], bool] = {}


def check(calls: Iterable[tuple[str, Call]]) -> list[Denied]:
    denied: list[Denied] = []
    for function, call in calls:
        statements = role_statements(function)
        for need in needs(call, rename=rename):
            ok = allowed(
                statements, action=need.action, resource=need.resource, context=need.context
            )
            CHECKED[(function, need.action, _shape(need.resource))] = ok
            if not ok:
                denied.append(Denied(function=function, need=need, call=call))
    return denied


def _shape(resource: str) -> str:
    """A resource with per-test parts (ids, object names) left out, for the coverage list."""
    if resource.startswith("arn:aws:s3:::"):
        _, _, key = resource.removeprefix("arn:aws:s3:::").partition("/")
        return "arn:aws:s3:::<bucket>" + (f"/{key.split('/', 1)[0]}/…" if key else "")
    if resource.startswith("arn:aws:dynamodb:"):
        head, _, tail = resource.partition(":table/")
        return (
            head
            + ":table/<table>"
            + ("/index/" + tail.split("/index/")[1] if "/index/" in tail else "")
        )
    if ":apigateway:" in resource:
        parts = resource.split("::", 1)[1].split("/")
        return "apigateway " + "/".join(
            p if i % 2 == 1 or not p else "{id}" for i, p in enumerate(parts)
        )
    return resource
