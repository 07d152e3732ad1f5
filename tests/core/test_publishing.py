"""Publishing: verification gate, dedup, numbering, stamping, alias rule, no half versions,
and races between publishers (threads and processes) on one SQLite registry."""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
import threading
from pathlib import Path
from typing import Any

import pytest

from functions.core.archive import check_artifact, read_manifest, restamp_archive
from functions.core.artifacts.local import DirectoryArtifactStore
from functions.core.exceptions import InvalidArtifact
from functions.core.publishing import PublishResult, publish_artifact
from functions.core.registry.exceptions import InvalidAliasTarget, ModelNotFound
from functions.core.registry.sqlite import SqliteRegistry
from functions.core.settings import Settings
from tests.artifact_testkit import MakeArtifact, write_tar

ROOT = Path(__file__).resolve().parents[2]


def publish(
    path: Path,
    registry: Any,
    store: Any,
    settings: Settings,
    *,
    alias: str | None = "default",
    actor: str = "alice",
) -> PublishResult:
    return publish_artifact(
        path=path,
        registry=registry,
        store=store,
        settings=settings,
        actor=actor,
        alias=alias,
        verify=check_artifact,
    )


def members_of(path: Path) -> dict[str, bytes]:
    with tarfile.open(path, "r:gz") as tar:
        out = {}
        for member in tar.getmembers():
            handle = tar.extractfile(member)
            assert handle is not None
            out[member.name] = handle.read()
        return out


def stored_files(settings: Settings) -> list[str]:
    root = settings.artifacts_dir
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


# The happy path ------------------------------------------------------------------------------
def test_publish_registers_v1_stamps_the_manifest_and_sets_default(
    make_artifact: MakeArtifact,
    registry: SqliteRegistry,
    store: DirectoryArtifactStore,
    local_settings: Settings,
) -> None:
    artifact = make_artifact(payload=b"model-one")

    result = publish(artifact, registry, store, local_settings)

    assert result.created is True
    version = result.version
    assert (version.model, version.version, version.created_by) == ("digits", 1, "alice")
    assert version.endpoint_name == "modelway-local-digits"
    assert version.variant_name == "v1"
    assert version.manifest["version"] == 1
    assert [(a.alias, a.version) for a in result.aliases] == [("default", 1)]
    assert registry.get_alias(model="digits", alias="default").version == 1

    # The stored artifact is where the local model server looks, with the number stamped in
    # and the model file byte for byte what was built.
    stored = local_settings.artifacts_dir / "digits" / "1" / "model.tar.gz"
    assert version.artifact_uri == stored.as_uri()
    members = members_of(stored)
    assert members["model.onnx"] == b"model-one"
    assert json.loads(members["modelway.json"])["version"] == 1
    assert read_manifest(path=stored).version == 1
    assert check_artifact(path=stored).version == 1


def test_republishing_the_same_file_names_the_existing_version_and_moves_only_aliases(
    make_artifact: MakeArtifact,
    registry: SqliteRegistry,
    store: DirectoryArtifactStore,
    local_settings: Settings,
) -> None:
    first = publish(make_artifact(payload=b"same"), registry, store, local_settings)
    # A different archive (other description) around the same model file.
    again = publish(
        make_artifact(payload=b"same", description="rebuilt"),
        registry,
        store,
        local_settings,
        alias="prod",
    )

    assert again.created is False
    assert again.version.version == first.version.version == 1
    # Nothing new is stored; the alias asked for is pointed at the version (a publish that
    # failed before its alias moved is finished by publishing again).
    assert [(a.alias, a.version) for a in again.aliases] == [("prod", 1)]
    assert [v.version for v in registry.list_versions(model="digits")] == [1]
    assert registry.get_alias(model="digits", alias="prod").version == 1
    assert stored_files(local_settings) == ["digits/1/model.tar.gz"]
    # Once done, it is a no-op.
    third = publish(make_artifact(payload=b"same"), registry, store, local_settings, alias="prod")
    assert (third.created, third.aliases) == (False, ())


def test_alias_rule(
    make_artifact: MakeArtifact,
    registry: SqliteRegistry,
    store: DirectoryArtifactStore,
    local_settings: Settings,
) -> None:
    # First version: "default" is created even when no alias is asked for.
    v1 = publish(make_artifact(), registry, store, local_settings, alias=None)
    assert [(a.alias, a.version) for a in v1.aliases] == [("default", 1)]

    # Later versions with the default argument move "default".
    publish(make_artifact(), registry, store, local_settings)
    assert registry.get_alias(model="digits", alias="default").version == 2

    # An explicit alias is created (or moved); "default" stays where it was.
    v3 = publish(make_artifact(), registry, store, local_settings, alias="staging")
    assert [(a.alias, a.version) for a in v3.aliases] == [("staging", 3)]
    assert registry.get_alias(model="digits", alias="default").version == 2

    # alias=None moves nothing once the model has a default.
    v4 = publish(make_artifact(), registry, store, local_settings, alias=None)
    assert v4.aliases == ()
    assert registry.get_alias(model="digits", alias="staging").version == 3
    assert registry.get_alias(model="digits", alias="default").version == 2


def test_an_invalid_alias_name_is_refused_before_anything_is_stored(
    make_artifact: MakeArtifact,
    registry: SqliteRegistry,
    store: DirectoryArtifactStore,
    local_settings: Settings,
) -> None:
    with pytest.raises(InvalidAliasTarget):
        publish(make_artifact(), registry, store, local_settings, alias="Not An Alias")
    assert registry.list_models() == []


# The gate --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"sha256": "0" * 64}, "checksum mismatch"),
        (
            {
                "parity": {
                    "samples": 8,
                    "max_abs_diff": 0.5,
                    "argmax_agreement": 0.5,
                    "tolerance": 1e-4,
                    "passed": False,
                }
            },
            "parity check failed",
        ),
        (
            {
                "parity": {
                    "samples": 8,
                    "max_abs_diff": 0.5,
                    "argmax_agreement": 1.0,
                    "tolerance": 1e-4,
                    "passed": True,
                }
            },
            "exceeds its tolerance",
        ),
        ({"name": "Bad Name"}, "invalid model name"),
        ({"signature": {"inputs": [], "outputs": []}}, "not a valid manifest"),
        ({"model_file": "weights.onnx"}, "has no weights.onnx"),
    ],
)
def test_a_bad_artifact_is_refused_and_nothing_is_stored(
    make_artifact: MakeArtifact,
    registry: SqliteRegistry,
    store: DirectoryArtifactStore,
    local_settings: Settings,
    overrides: dict[str, Any],
    message: str,
) -> None:
    with pytest.raises(InvalidArtifact, match=message):
        publish(make_artifact(**overrides), registry, store, local_settings)
    assert registry.list_models() == []
    assert stored_files(local_settings) == []


def test_unsafe_or_broken_archives_are_refused(tmp_path: Path) -> None:
    not_a_tar = tmp_path / "junk.tar.gz"
    not_a_tar.write_bytes(b"definitely not gzip")
    with pytest.raises(InvalidArtifact, match="not a readable tar"):
        check_artifact(path=not_a_tar)

    with pytest.raises(InvalidArtifact, match="no artifact"):
        check_artifact(path=tmp_path / "missing.tar.gz")

    escaping = write_tar(tmp_path / "escape.tar.gz", {"../evil": b"x", "modelway.json": b"{}"})
    with pytest.raises(InvalidArtifact, match=r"'\.\.' is not allowed"):
        check_artifact(path=escaping)

    linked = tmp_path / "link.tar.gz"
    with tarfile.open(linked, "w:gz") as tar:
        info = tarfile.TarInfo("model.onnx")
        info.type = tarfile.SYMTYPE
        info.linkname = "/etc/passwd"
        tar.addfile(info)
    with pytest.raises(InvalidArtifact, match="only regular files"):
        check_artifact(path=linked)

    no_manifest = write_tar(tmp_path / "bare.tar.gz", {"model.onnx": b"x"})
    with pytest.raises(InvalidArtifact, match=r"has no modelway\.json"):
        read_manifest(path=no_manifest)

    not_json = write_tar(tmp_path / "nj.tar.gz", {"modelway.json": b"{nope"})
    with pytest.raises(InvalidArtifact, match="not valid JSON"):
        read_manifest(path=not_json)


def test_the_injected_verifier_is_the_gate(
    make_artifact: MakeArtifact,
    registry: SqliteRegistry,
    store: DirectoryArtifactStore,
    local_settings: Settings,
) -> None:
    def refuse(*, path: Path) -> Any:
        raise InvalidArtifact("graph does not match the signature")

    with pytest.raises(InvalidArtifact, match="graph does not match"):
        publish_artifact(
            path=make_artifact(),
            registry=registry,
            store=store,
            settings=local_settings,
            actor="a",
            verify=refuse,
        )
    assert registry.list_models() == []


# Re-packing --------------------------------------------------------------------------------------
def test_restamping_is_deterministic_and_keeps_other_members(
    make_artifact: MakeArtifact, tmp_path: Path
) -> None:
    artifact = make_artifact(payload=b"\x00weights\xff" * 100, members={"./labels.txt": b"a\nb\n"})
    manifest = check_artifact(path=artifact).model_copy(update={"version": 7})

    one = restamp_archive(source=artifact, manifest=manifest, dest=tmp_path / "one.tar.gz")
    two = restamp_archive(source=artifact, manifest=manifest, dest=tmp_path / "two.tar.gz")

    assert one.read_bytes() == two.read_bytes()
    members = members_of(one)
    assert sorted(members) == ["labels.txt", "model.onnx", "modelway.json"]
    assert members["model.onnx"] == b"\x00weights\xff" * 100
    assert members["labels.txt"] == b"a\nb\n"
    assert check_artifact(path=one).version == 7


# No half versions ---------------------------------------------------------------------------
class FailingRegister:
    """A registry whose register_version fails after the artifact was uploaded."""

    def __init__(self, inner: SqliteRegistry) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def register_version(self, **kwargs: Any) -> Any:
        raise RuntimeError("registry went away")


def test_a_failure_after_upload_deletes_the_artifact(
    make_artifact: MakeArtifact,
    registry: SqliteRegistry,
    store: DirectoryArtifactStore,
    local_settings: Settings,
) -> None:
    with pytest.raises(RuntimeError, match="registry went away"):
        publish(make_artifact(), FailingRegister(registry), store, local_settings)
    assert stored_files(local_settings) == []
    with pytest.raises(ModelNotFound):
        registry.list_versions(model="digits")
    # The reserved number is burnt, never reused.
    assert publish(make_artifact(), registry, store, local_settings).version.version == 2


class BlindDedup:
    """A registry that never finds a duplicate up front: what a racing publisher sees."""

    def __init__(self, inner: SqliteRegistry) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def find_by_sha256(self, **kwargs: Any) -> None:
        return None


def test_losing_a_race_to_register_the_same_file_returns_the_winner(
    make_artifact: MakeArtifact,
    registry: SqliteRegistry,
    store: DirectoryArtifactStore,
    local_settings: Settings,
) -> None:
    winner = publish(make_artifact(payload=b"contested"), registry, store, local_settings)
    loser = publish(
        make_artifact(payload=b"contested"), BlindDedup(registry), store, local_settings
    )
    assert loser.created is False
    assert loser.version == winner.version
    # The loser's upload (under the number it reserved) is gone.
    assert stored_files(local_settings) == ["digits/1/model.tar.gz"]


# Races -------------------------------------------------------------------------------------------
def run_threads(count: int, target: Any) -> list[Any]:
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count
    errors: list[BaseException] = []

    def work(i: int) -> None:
        barrier.wait()
        try:
            results[i] = target(i)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    return results


def test_threads_publishing_different_files_get_distinct_numbers(
    make_artifact: MakeArtifact, local_settings: Settings, store: DirectoryArtifactStore
) -> None:
    artifacts = [make_artifact(payload=f"model {i}".encode()) for i in range(8)]

    def one(i: int) -> PublishResult:
        # Each thread its own registry object, as separate router workers would have.
        registry = SqliteRegistry(path=local_settings.registry_path)
        return publish(artifacts[i], registry, store, local_settings, alias=None)

    results = run_threads(8, one)

    assert all(r.created for r in results)
    assert sorted(r.version.version for r in results) == list(range(1, 9))
    registry = SqliteRegistry(path=local_settings.registry_path)
    assert len(registry.list_versions(model="digits")) == 8
    assert len(stored_files(local_settings)) == 8


def test_threads_publishing_the_same_file_make_exactly_one_version(
    make_artifact: MakeArtifact,
    registry: SqliteRegistry,
    local_settings: Settings,
    store: DirectoryArtifactStore,
) -> None:
    artifact = make_artifact(payload=b"everyone publishes me")

    results = run_threads(8, lambda i: publish(artifact, registry, store, local_settings))

    assert sum(r.created for r in results) == 1
    assert len({r.version.version for r in results}) == 1
    versions = registry.list_versions(model="digits")
    assert len(versions) == 1
    assert stored_files(local_settings) == [f"digits/{versions[0].version}/model.tar.gz"]


_PUBLISHER = """
import json, sys, time
from pathlib import Path
from functions.core.artifacts.local import DirectoryArtifactStore
from functions.core.archive import check_artifact
from functions.core.publishing import publish_artifact
from functions.core.registry.sqlite import SqliteRegistry
from functions.core.settings import Settings

home, artifact, go = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
settings = Settings(env="local", home=home)
registry = SqliteRegistry(path=settings.registry_path)
store = DirectoryArtifactStore(artifacts_dir=settings.artifacts_dir, data_dir=settings.data_dir)
print("ready", flush=True)
while not go.exists():
    time.sleep(0.005)
result = publish_artifact(
    path=artifact, registry=registry, store=store, settings=settings, actor="proc",
    verify=check_artifact,
)
print(json.dumps({"version": result.version.version, "created": result.created}), flush=True)
"""


def run_processes(artifacts: list[Path], settings: Settings, go: Path) -> list[dict[str, Any]]:
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _PUBLISHER, str(settings.home), str(a), str(go)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for a in artifacts
    ]
    try:
        for p in procs:
            assert p.stdout is not None
            assert p.stdout.readline().strip() == "ready", p.stderr.read() if p.stderr else ""
        go.touch()  # all start publishing at once
        outputs = []
        for p in procs:
            out, err = p.communicate(timeout=120)
            assert p.returncode == 0, err
            outputs.append(json.loads(out.strip().splitlines()[-1]))
        return outputs
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()


def test_processes_publishing_different_files_get_distinct_numbers(
    make_artifact: MakeArtifact, local_settings: Settings, tmp_path: Path
) -> None:
    artifacts = [make_artifact(payload=f"process model {i}".encode()) for i in range(4)]

    results = run_processes(artifacts, local_settings, tmp_path / "go")

    assert all(r["created"] for r in results)
    assert sorted(r["version"] for r in results) == [1, 2, 3, 4]
    assert len(stored_files(local_settings)) == 4


def test_processes_publishing_the_same_file_make_exactly_one_version(
    make_artifact: MakeArtifact, local_settings: Settings, tmp_path: Path
) -> None:
    artifact = make_artifact(payload=b"contested across processes")

    results = run_processes([artifact] * 4, local_settings, tmp_path / "go")

    assert sum(r["created"] for r in results) == 1
    assert len({r["version"] for r in results}) == 1
    registry = SqliteRegistry(path=local_settings.registry_path)
    assert [v.version for v in registry.list_versions(model="digits")] == [results[0]["version"]]
    assert stored_files(local_settings) == [f"digits/{results[0]['version']}/model.tar.gz"]


# The router's path: an archive already in the store, verified as a stream, copied --------------
def test_an_uploaded_archive_is_published_as_uploaded(
    make_artifact: MakeArtifact,
    registry: SqliteRegistry,
    store: DirectoryArtifactStore,
    local_settings: Settings,
) -> None:
    from functions.core.publishing import publish_uploaded

    upload = make_artifact().read_bytes()
    store.put_object(key="uploads/a.tar.gz", body=upload)
    result = publish_uploaded(
        key="uploads/a.tar.gz",
        registry=registry,
        store=store,
        settings=local_settings,
        actor="alice",
    )
    assert result.created
    assert result.version.version == 1
    assert result.version.manifest["version"] == 1
    fetched = store.fetch_artifact(
        model="digits", version=1, dest=Path(local_settings.data_dir) / "f"
    )
    assert fetched.read_bytes() == upload  # copied, not re-packed

    again = publish_uploaded(
        key="uploads/a.tar.gz",
        registry=registry,
        store=store,
        settings=local_settings,
        actor="alice",
    )
    assert not again.created
    assert again.version.version == 1


def test_an_uploaded_archive_that_fails_the_check_stores_nothing(
    make_artifact: MakeArtifact,
    registry: SqliteRegistry,
    store: DirectoryArtifactStore,
    local_settings: Settings,
) -> None:
    from functions.core.publishing import publish_uploaded

    store.put_object(key="uploads/a.tar.gz", body=make_artifact(sha256="0" * 64).read_bytes())
    with pytest.raises(InvalidArtifact, match="checksum mismatch"):
        publish_uploaded(
            key="uploads/a.tar.gz",
            registry=registry,
            store=store,
            settings=local_settings,
            actor="alice",
        )
    assert registry.list_models() == []
    assert stored_files(local_settings) == []


def test_the_stream_check_refuses_what_the_file_check_refuses(tmp_path: Path) -> None:
    from functions.core.archive import check_stream

    not_a_tar = tmp_path / "junk.tar.gz"
    not_a_tar.write_bytes(b"definitely not gzip")
    escaping = write_tar(tmp_path / "escape.tar.gz", {"../evil": b"x", "modelway.json": b"{}"})
    linked = tmp_path / "link.tar.gz"
    with tarfile.open(linked, "w:gz") as tar:
        info = tarfile.TarInfo("model.onnx")
        info.type = tarfile.SYMTYPE
        info.linkname = "/etc/passwd"
        tar.addfile(info)
    no_manifest = write_tar(tmp_path / "bare.tar.gz", {"model.onnx": b"x"})
    not_json = write_tar(tmp_path / "nj.tar.gz", {"modelway.json": b"{nope"})
    for path, message in (
        (not_a_tar, "not a readable tar"),
        (escaping, r"'\.\.' is not allowed"),
        (linked, "only regular files"),
        (no_manifest, r"has no modelway\.json"),
        (not_json, "not valid JSON"),
    ):
        with path.open("rb") as reader, pytest.raises(InvalidArtifact, match=message):
            check_stream(reader=reader)
