"""Synthesizes every environment of the CDK app once per test session.

The app is built exactly as ``cdk synth -c env=NAME`` builds it (``infra.app.build`` with the
context of ``cdk.json``), but environment-agnostic (no account or region from the caller's
shell) so that the assertions do not depend on who runs them. Synthesis is the slow part
(seconds per environment); the Lambda bundle behind it is built once and cached.
"""

from __future__ import annotations

import pytest

from tests.infra.infra_testkit import ENVIRONMENTS, Synthesized


@pytest.fixture(scope="session")
def synthesized() -> dict[str, Synthesized]:
    # The IAM proof (tests/iam_proof) synthesizes through the same cache: once per process.
    from tests.iam_proof.proof import synthesize

    results: dict[str, Synthesized] = {}
    for env in ENVIRONMENTS:
        synth = synthesize(env)
        results[env] = Synthesized(
            name=env,
            stack=synth.stack,
            template=synth.template,
            template_path=synth.path,
            outdir=synth.outdir,
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
