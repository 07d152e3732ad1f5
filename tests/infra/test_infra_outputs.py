"""After a deploy, the stack's outputs point the modelway CLI at the environment."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from infra.outputs import exports, settings_from_outputs
from tests.infra.infra_testkit import REPO_ROOT, Synthesized

pytestmark = pytest.mark.infra

PSEUDO = {
    "AWS::AccountId": "123456789012",
    "AWS::Region": "eu-west-1",
    "AWS::URLSuffix": "amazonaws.com",
    "AWS::Partition": "aws",
}


def _deployed(value: Any) -> str:
    """What CloudFormation would print for an output value (made-up physical ids)."""
    if isinstance(value, str):
        return value
    if "Fn::Join" in value:
        delimiter, items = value["Fn::Join"]
        return str(delimiter).join(_deployed(item) for item in items)
    if "Ref" in value:
        return PSEUDO.get(value["Ref"], f"phys-{value['Ref'].lower()}")
    if "Fn::GetAtt" in value:
        resource, attribute = value["Fn::GetAtt"]
        return f"arn:aws:iam::123456789012:role/{resource}-{attribute}"
    if "Fn::Sub" in value:
        return re.sub(r"\$\{([^}]+)\}", lambda m: PSEUDO[m.group(1)], value["Fn::Sub"])
    raise AssertionError(f"unexpected intrinsic {value}")


@pytest.fixture(scope="module")
def outputs_file(dev: Synthesized, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Like ``cdk deploy --outputs-file``: {stack: {output: value}}."""
    stack_outputs = {k: _deployed(v["Value"]) for k, v in dev.template["Outputs"].items()}
    path = tmp_path_factory.mktemp("deploy") / "cdk-outputs.json"
    path.write_text(json.dumps({"modelway-dev": stack_outputs}))
    return path


def test_outputs_give_the_cli_valid_settings_for_the_environment(
    outputs_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from functions.core.settings import Settings

    variables = settings_from_outputs(json.loads(outputs_file.read_text()))
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    settings = Settings()
    assert settings.env == "dev"
    assert settings.region == "eu-west-1"
    assert settings.table_name.startswith("phys-storageregistry")
    assert settings.bucket_name.startswith("phys-storagedata")
    assert settings.resolved_endpoint_prefix == "modelway-dev"
    assert settings.rollback_alarm_names == []
    assert settings.rollback_5xx_count == 10
    assert settings.alarm_topic_arn
    assert set(settings.usage_plan_ids) == {"free", "standard", "premium"}
    assert settings.usage_plan_id == settings.usage_plan_ids["standard"]
    assert settings.sagemaker_role_arn
    assert settings.sagemaker_role_arn.startswith("arn:aws:iam::")
    assert settings.serving_image_uri
    assert ".dkr.ecr.eu-west-1.amazonaws.com/" in (settings.serving_image_uri)
    assert settings.instance_type == "ml.g5.xlarge"
    assert not settings.is_local


def test_outputs_module_prints_shell_exports(outputs_file: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "infra.outputs", str(outputs_file)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    # Evaluated by a real shell, the exports give back exactly the values, quotes and all.
    dump = "import json, os; print(json.dumps({k: v for k, v in os.environ.items()}))"
    shell = subprocess.run(
        ["bash", "-c", f'eval "$(cat)"; {sys.executable} -c "{dump}"'],
        input=result.stdout,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env={"PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    expected = settings_from_outputs(json.loads(outputs_file.read_text()))
    environ = json.loads(shell.stdout)
    assert {k: v for k, v in environ.items() if k.startswith("MODELWAY_")} == expected


def test_outputs_module_needs_a_stack_when_there_are_several() -> None:
    outputs = {"modelway-dev": {"Settings": "{}"}, "modelway-prod": {"Settings": "{}"}}
    with pytest.raises(ValueError, match="choose a stack with --stack"):
        settings_from_outputs(outputs)
    assert settings_from_outputs(outputs, "modelway-prod") == {}
    assert exports({"MODELWAY_X": "a b'c"}) == "export MODELWAY_X='a b'\"'\"'c'\n"
