"""``modelway publish | versions | models | alias | rollback | history | retire | keys`` on the
local backend, as a user runs them."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from cli import main
from functions.core.archive import check_artifact
from tests.artifact_testkit import MakeArtifact, fake_manifest, write_tar


@pytest.fixture
def light_verify(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake artifacts carry no real ONNX graph: verify them without the graph check."""
    import model_build.verify

    def verify(*, path: Path) -> Any:
        return check_artifact(path=path)

    monkeypatch.setattr(model_build.verify, "verify_artifact", verify)


@pytest.fixture(autouse=True)
def actor(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("MODELWAY_ACTOR", "carol")
    return "carol"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    code, out, err = run(capsys, *argv)
    assert code == 0, err
    return json.loads(out)


@pytest.mark.usefixtures("modelway_home", "light_verify")
def test_publish_promote_canary_roll_back_and_retire(
    capsys: pytest.CaptureFixture[str], make_artifact: MakeArtifact
) -> None:
    first = run_json(capsys, "publish", str(make_artifact()))
    assert first == {
        "model": "digits",
        "version": 1,
        "created": True,
        "sha256": first["sha256"],
        "artifact_uri": first["artifact_uri"],
        "aliases": {"default": 1},
    }
    again = run_json(capsys, "publish", str(make_artifact(payload=b"fake onnx model 0")))
    assert again["created"] is False
    assert "already digits version 1" in again["note"]

    assert run_json(capsys, "publish", "--no-alias", str(make_artifact()))["aliases"] == {}
    assert run_json(capsys, "publish", "--alias", "prod", str(make_artifact()))["aliases"] == {
        "prod": 3
    }

    canary = run_json(
        capsys, "alias", "set", "digits", "default", "1", "--canary", "2", "--weight", "10"
    )
    assert (canary["version"], canary["canary_version"], canary["canary_weight"]) == (1, 2, 10)
    assert canary["updated_by"] == "carol"

    code, out, _ = run(capsys, "versions", "digits")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["VERSION", "STATUS", "ALIASES", "SHA256", "CREATED", "BY"]
    assert lines[1].split()[:3] == ["1", "active", "default"]
    assert lines[2].split()[:3] == ["2", "active", "default(canary)"]
    assert lines[3].split()[:3] == ["3", "active", "prod"]

    code, out, _ = run(capsys, "models")
    assert out.splitlines()[1].split() == ["digits", "3", "3", "default=v1+v2@10%", "prod=v3"]

    # Retiring what an alias or canary still serves is refused, with the reason.
    code, _, err = run(capsys, "retire", "digits", "2")
    assert code == 1
    assert "in use by alias(es) default" in err
    assert "version_in_use" in err

    rolled = run_json(capsys, "rollback", "digits", "default")
    assert (rolled["version"], rolled["canary_version"]) == (1, None)

    code, out, _ = run(capsys, "history", "digits", "--alias", "default")
    rows = [line.split() for line in out.splitlines()[1:]]
    assert [r[1:5] for r in rows] == [
        ["default", "set", "-", "v1"],
        ["default", "set", "v1", "v1+v2@10%"],
        ["default", "rollback", "v1+v2@10%", "v1"],
    ]
    assert {r[5] for r in rows} == {"carol"}

    retired = run_json(capsys, "retire", "digits", "2")
    assert retired == {"model": "digits", "version": 2, "status": "retired"}
    code, _, err = run(capsys, "alias", "set", "digits", "prod", "2")
    assert code == 1
    assert "retired" in err

    code, out, _ = run(capsys, "alias", "list", "digits")
    assert [line.split()[:2] for line in out.splitlines()[1:]] == [["default", "1"], ["prod", "3"]]


@pytest.mark.usefixtures("modelway_home", "light_verify")
def test_user_errors_are_one_line_with_a_code(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, _, err = run(capsys, "versions", "nothing-here")
    assert (code, err.strip()) == (1, "error: unknown model 'nothing-here' (model_not_found)")

    code, _, err = run(capsys, "publish", str(tmp_path / "missing.tar.gz"))
    assert code == 1
    assert "invalid_artifact" in err

    code, _, err = run(capsys, "alias", "set", "digits", "default", "1", "--weight", "5")
    assert code == 2  # bad usage, like argparse's own
    assert "--weight needs --canary" in err

    code, out, _ = run(capsys, "models")
    assert (code, out.strip()) == (0, "(none)")


@pytest.mark.usefixtures("modelway_home")
def test_keys_lifecycle(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "keys", "create", "--name", "ci", "--models", "digits,iris")
    assert code == 0
    created = json.loads(out)
    secret = created["secret"]
    assert secret.startswith("mw_")
    assert created["models"] == ["digits", "iris"]
    assert created["admin"] is False
    assert "shown only once" in err

    code, out, _ = run(capsys, "keys", "list")
    assert secret not in out
    assert out.splitlines()[1].split()[:5] == [
        created["key_id"],
        "ci",
        "digits,iris",
        "no",
        "active",
    ]

    code, out, err = run(capsys, "keys", "rotate", created["key_id"])
    rotated = json.loads(out)
    assert rotated["key_id"] == created["key_id"]
    assert rotated["secret"] != secret
    assert "shown only once" in err

    revoked = run_json(capsys, "keys", "revoke", created["key_id"])
    assert revoked["active"] is False
    assert "secret" not in revoked

    code, _, err = run(capsys, "keys", "rotate", created["key_id"])
    assert code == 1
    assert "revoked" in err

    admin = run_json(capsys, "keys", "create", "--name", "ops", "--models", "*", "--admin")
    assert (admin["models"], admin["admin"]) == (["*"], True)


@pytest.mark.usefixtures("modelway_home")
def test_publish_runs_the_real_onnx_verification(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """The CLI's gate is model_build.verify: a graph that does not match its manifest's
    signature is refused, a matching one is published."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "identity",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model_bytes = model.SerializeToString()
    onnx.checker.check_model(model)

    def artifact(name: str, **overrides: Any) -> Path:
        manifest = fake_manifest(name="identity", model_bytes=model_bytes, **overrides)
        assert manifest["sha256"] == hashlib.sha256(model_bytes).hexdigest()
        return write_tar(
            tmp_path / name,
            {
                "modelway.json": json.dumps(manifest).encode(),
                "model.onnx": model_bytes,
            },
        )

    wrong = artifact(
        "wrong.tar.gz",
        signature={
            "inputs": [{"name": "pixels", "datatype": "FP32", "shape": [-1, 4]}],
            "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1, 4]}],
        },
    )
    code, _, err = run(capsys, "publish", str(wrong))
    assert code == 1
    assert "does not match the ONNX graph" in err

    published = run_json(capsys, "publish", str(artifact("right.tar.gz")))
    assert (published["model"], published["version"], published["created"]) == (
        "identity",
        1,
        True,
    )


@pytest.mark.usefixtures("modelway_home", "light_verify")
def test_a_prod_like_home_needs_a_second_person_to_approve_before_an_alias_moves(
    capsys: pytest.CaptureFixture[str], make_artifact: MakeArtifact, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODELWAY_REQUIRE_APPROVAL", "true")
    # Publishing registers the version but moves no alias: nobody has approved it yet.
    published = run_json(capsys, "publish", str(make_artifact()))
    assert (published["version"], published["aliases"]) == (1, {})

    code, _, err = run(capsys, "alias", "set", "digits", "default", "1")
    assert code == 1
    assert "not_approved" in err
    assert "version 1 is pending" in err

    code, _, err = run(capsys, "approve", "digits", "1")
    assert code == 1
    assert "self_approval" in err
    assert "carol published digits version 1" in err

    monkeypatch.setenv("MODELWAY_ACTOR", "dave")
    decision = run_json(capsys, "approve", "digits", "1", "--reason", "parity ok")
    assert (decision["decision"], decision["actor"], decision["reason"]) == (
        "approved",
        "dave",
        "parity ok",
    )
    moved = run_json(capsys, "alias", "set", "digits", "default", "1")
    assert (moved["version"], moved["updated_by"]) == (1, "dave")

    code, out, _ = run(capsys, "history", "digits")
    rows = [line.split() for line in out.splitlines()[1:]]
    assert [r[1:] for r in rows] == [
        ["-", "approved", "-", "v1", "(parity", "ok)", "dave"],
        ["default", "set", "-", "v1", "dave"],
    ]

    run_json(capsys, "reject", "digits", "1", "--reason", "drift")
    code, _, err = run(capsys, "alias", "set", "digits", "canary", "1")
    assert code == 1
    assert "version 1 is rejected" in err


@pytest.mark.usefixtures("modelway_home", "light_verify")
def test_publish_with_an_alias_in_a_prod_like_home_holds_it_until_approved(
    capsys: pytest.CaptureFixture[str], make_artifact: MakeArtifact, monkeypatch: pytest.MonkeyPatch
) -> None:
    """publish --alias obeys the gate: the alias is held (and the output says why) until
    another admin approves; publishing the same file again then moves it."""
    monkeypatch.setenv("MODELWAY_REQUIRE_APPROVAL", "true")
    artifact = make_artifact()
    published = run_json(capsys, "publish", str(artifact), "--alias", "prod")
    assert published["aliases"] == {}
    assert published["held"]["aliases"] == ["prod", "default"]
    assert "version 1 is pending" in published["held"]["reason"]
    assert "modelway approve digits" in published["held"]["reason"]

    monkeypatch.setenv("MODELWAY_ACTOR", "dave")
    run_json(capsys, "approve", "digits", "1")
    again = run_json(capsys, "publish", str(artifact), "--alias", "prod")
    assert (again["created"], again["aliases"]) == (False, {"prod": 1, "default": 1})
    assert "held" not in again

    # Rejected later: a rollback to it, like any move, is refused.
    second = run_json(capsys, "publish", str(make_artifact(payload=b"two")), "--alias", "prod")
    assert second["held"]["aliases"] == ["prod"]
    monkeypatch.setenv("MODELWAY_ACTOR", "carol")
    run_json(capsys, "approve", "digits", "2")
    assert run_json(capsys, "alias", "set", "digits", "prod", "2")["version"] == 2
    run_json(capsys, "reject", "digits", "1", "--reason", "drift")
    code, _, err = run(capsys, "rollback", "digits", "prod")
    assert code == 1
    assert "version 1 is rejected" in err
