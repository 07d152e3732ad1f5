"""``modelway cost``: instance-hours a month per environment, variants vs inference components,
from cdk.json's own settings."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cli import main
from cli.cost import HOURS_PER_MONTH, copies_per_instance

ROOT = Path(__file__).resolve().parents[2]


def environments() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((ROOT / "cdk.json").read_text())
    return dict(data["context"]["environments"])


def cost(capsys: pytest.CaptureFixture[str], *argv: str) -> list[dict[str, Any]]:
    assert main(["cost", "--json", *argv]) == 0
    found: list[dict[str, Any]] = json.loads(capsys.readouterr().out)
    return found


def test_every_environment_gets_a_row_from_its_own_settings(
    capsys: pytest.CaptureFixture[str],
) -> None:
    rows = {row["env"]: row for row in cost(capsys)}
    assert set(rows) == set(environments())
    for name, env in environments().items():
        sm = env["sagemaker"]
        row = rows[name]
        assert row["instance_type"] == sm["instance_type"]
        # Variants: 3 kept versions (alias target, rollback target, newest), each a fleet.
        assert row["variants_min"] == 3 * max(sm["min_instance_count"], 1) * HOURS_PER_MONTH
        assert row["variants_max"] == 3 * sm["max_instance_count"] * HOURS_PER_MONTH
        # Components: one fleet, bounded by the same maximum for all versions together.
        assert row["components_max"] == sm["max_instance_count"] * HOURS_PER_MONTH


def test_components_cost_less_at_the_minimum_where_versions_are_kept_cold(
    capsys: pytest.CaptureFixture[str],
) -> None:
    for row in cost(capsys, "--kept", "3", "--hot", "1"):
        assert row["components_min"] < row["variants_min"]
        assert row["components_max"] <= row["variants_max"]


def test_the_minimum_counts_the_instances_the_aliased_copies_take(
    capsys: pytest.CaptureFixture[str],
) -> None:
    sm = environments()["prod"]["sagemaker"]
    (one,) = cost(capsys, "--env", "prod", "--hot", "1")
    (two,) = cost(capsys, "--env", "prod", "--hot", "2", "--models", "2")
    per_copy = sm["components"]["min_copies"]  # one GPU per copy on a one-GPU instance
    assert one["components_min"] == max(sm["min_instance_count"], per_copy) * HOURS_PER_MONTH
    assert two["components_min"] == 2 * max(sm["min_instance_count"], 2 * per_copy) * (
        HOURS_PER_MONTH
    )
    assert two["variants_min"] == 2 * one["variants_min"]


def test_copies_pack_by_gpus_and_memory() -> None:
    assert copies_per_instance(instance_type="ml.g5.12xlarge", accelerators=1, memory_mb=8192) == 4
    assert copies_per_instance(instance_type="ml.g5.12xlarge", accelerators=2, memory_mb=8192) == 2
    # Memory binds first: 192 GiB / 96 GiB.
    assert copies_per_instance(instance_type="ml.g5.48xlarge", accelerators=1, memory_mb=98304) == 8
    assert copies_per_instance(instance_type="ml.g5.12xlarge", accelerators=1, memory_mb=98304) == 2
    # CPU instances: memory only.
    assert copies_per_instance(instance_type="ml.m5.xlarge", accelerators=0, memory_mb=4096) == 4


def test_a_table_for_people_and_clear_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cost", "--env", "dev"]) == 0
    out, err = capsys.readouterr()
    header, row = out.splitlines()
    assert header.split()[:2] == ["ENV", "INSTANCE"]
    assert row.split()[0] == "dev"
    assert "instance-hours a month" in err

    assert main(["cost", "--env", "nope"]) == 2
    assert "unknown environment 'nope'" in capsys.readouterr().err
    assert main(["cost", "--hot", "0"]) == 2


def test_an_unknown_instance_type_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = json.loads((ROOT / "cdk.json").read_text())
    data["context"]["environments"]["dev"]["sagemaker"]["instance_type"] = "ml.x9.huge"
    custom = tmp_path / "cdk.json"
    custom.write_text(json.dumps(data))

    assert main(["cost", "--env", "dev", "--cdk-json", str(custom)]) == 2
    assert "no size known for ml.x9.huge" in capsys.readouterr().err
