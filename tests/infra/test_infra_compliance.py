"""Security rules (cdk-nag AwsSolutions), CloudFormation lint, and the README's synth command."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import aws_cdk as cdk
import pytest

from tests.infra.infra_testkit import ENVIRONMENTS, REPO_ROOT, Synthesized

pytestmark = pytest.mark.infra

CFN_LINT = Path(sys.executable).parent / "cfn-lint"


def test_cdk_nag_aws_solutions_finds_no_unacknowledged_error(each_env: Synthesized) -> None:
    from cdk_nag import AwsSolutionsChecks

    report = AwsSolutionsChecks().validate_scope(each_env.stack)
    findings = [
        (v.rule_name, v.severity, [r.construct_path for r in v.violating_resources])
        for v in report.violations
    ]
    for finding in findings:
        print(f"cdk-nag {each_env.name}: {finding}")
    errors = [f for f in findings if f[1] == "error"]
    assert errors == []
    print(f"cdk-nag {each_env.name}: {len(findings)} unacknowledged findings, 0 errors")


def test_every_acknowledgement_has_a_reason_and_a_narrow_scope(each_env: Synthesized) -> None:
    key = cdk.Validations.ACKNOWLEDGED_RULES_METADATA_KEY
    count = 0
    for construct in each_env.stack.node.find_all():
        for entry in construct.node.metadata:
            if entry.type != key:
                continue
            assert construct is not each_env.stack, "no stack-wide acknowledgements"
            for rule, reason in dict(entry.data).items():
                count += 1
                assert isinstance(reason, str), rule
                assert len(reason.strip()) > 20, rule
                assert "AwsSolutions-" in rule
    assert count > 0
    print(f"cdk-nag {each_env.name}: {count} acknowledgements, each with its reason")


def test_cfn_lint_finds_no_error_in_any_environment(synthesized: dict[str, Synthesized]) -> None:
    templates = [str(synthesized[env].template_path) for env in ENVIRONMENTS]
    result = subprocess.run(
        [str(CFN_LINT), "--format", "json", *templates],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.stdout.strip(), result.stderr
    matches = json.loads(result.stdout)
    levels: dict[str, int] = {}
    for match in matches:
        levels[match["Level"]] = levels.get(match["Level"], 0) + 1
    print(f"cfn-lint over {', '.join(ENVIRONMENTS)}: {levels or 'clean'}")
    errors = [
        f"{m['Rule']['Id']} {m['Filename']}: {m['Message']}"
        for m in matches
        if m["Level"] == "Error"
    ]
    assert errors == []


def _cdk_cli() -> Path:
    cli = REPO_ROOT / "infra" / "node_modules" / ".bin" / "cdk"
    if not cli.exists() or shutil.which("node") is None:
        pytest.skip("the CDK CLI is not installed (npm ci --prefix infra)")
    return cli


def test_readme_synth_command_fails_clearly_on_an_unknown_environment() -> None:
    _cdk_cli()
    result = subprocess.run(
        ["npx", "--prefix", "infra", "cdk", "synth", "-c", "env=nope", "--quiet"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode != 0
    assert "unknown environment 'nope': cdk.json defines dev, prod, staging" in result.stderr


def test_readme_synth_command_works(tmp_path: Path) -> None:
    _cdk_cli()
    result = subprocess.run(
        ["npx", "--prefix", "infra", "cdk", "synth", "-c", "env=dev", "--quiet",
         "--output", str(tmp_path)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-4000:]
    template = json.loads((tmp_path / "modelway-dev.template.json").read_text())
    assert "AWS::ApiGateway::RestApi" in {r["Type"] for r in template["Resources"].values()}
