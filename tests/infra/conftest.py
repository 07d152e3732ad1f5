"""Synthesizes every environment of the CDK app once per test session.

The app is built exactly as ``cdk synth -c env=NAME`` builds it (``infra.app.build`` with the
context of ``cdk.json``), but environment-agnostic (no account or region from the caller's
shell) so that the assertions do not depend on who runs them. Synthesis is the slow part
(seconds per environment); the Lambda bundle behind it is built once and cached.
"""

from __future__ import annotations

import json

import pytest
from infra_testkit import ENVIRONMENTS, Synthesized, cdk_context


@pytest.fixture(scope="session")
def synthesized(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Synthesized]:
    import aws_cdk as cdk

    from infra.app import build

    results: dict[str, Synthesized] = {}
    with pytest.MonkeyPatch.context() as mp:
        for var in ("CDK_DEFAULT_ACCOUNT", "CDK_DEFAULT_REGION"):
            mp.delenv(var, raising=False)
        for env in ENVIRONMENTS:
            outdir = tmp_path_factory.mktemp(f"cdk-{env}")
            app = cdk.App(context=cdk_context(env), outdir=str(outdir))
            stack = build(app)
            app.synth()
            path = outdir / f"{stack.stack_name}.template.json"
            results[env] = Synthesized(
                name=env,
                stack=stack,
                template=json.loads(path.read_text()),
                template_path=path,
                outdir=outdir,
            )
    return results


@pytest.fixture(scope="session", params=ENVIRONMENTS)
def each_env(request: pytest.FixtureRequest, synthesized: dict[str, Synthesized]) -> Synthesized:
    """Runs a test once per environment."""
    return synthesized[str(request.param)]


@pytest.fixture(scope="session")
def dev(synthesized: dict[str, Synthesized]) -> Synthesized:
    return synthesized["dev"]


@pytest.fixture(scope="session")
def prod(synthesized: dict[str, Synthesized]) -> Synthesized:
    return synthesized["prod"]
