"""Batch scoring's memory does not grow with the file: a 200,000-record digits JSON Lines file
is scored through the batch handler on the local stack, beside a 20,000-record baseline in
the same run, and the peaks are compared.

What runs: a digits-shaped classifier (input FP32 [-1, 1, 8, 8] → logits [-1, 10], label
[-1]; a linear layer built with onnx.helper, so no training is needed) is published into a
fresh local state directory and served by the real model server (``python -m serving local``,
its own process); each file is scored by ``functions.batch.handler.handler`` in a fresh
child process, over the real runtime client (boto3 ``sagemaker-runtime`` → loopback), the
SQLite registry and the directory store — exactly what ``modelway batch submit`` runs.

What is measured, per file, in the child that scored it (the model server is not counted):
the peak resident set (``ru_maxrss``), the peak of Python allocations (``tracemalloc``, in a
second child: it slows Python down, so throughput comes from the first), the wall time, and
that the output holds exactly one line per input record.

    .venv/bin/python benchmarks/bench_batch_memory.py [--records 200000] [--baseline 20000]
        [--tracemalloc]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
MODEL = "digits"
PREFIX = "modelway-local"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--baseline", type=int, default=20_000)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument(
        "--tracemalloc",
        action="store_true",
        help="also score each file again under tracemalloc for the peak of Python allocations "
        "(slows Python down: adds about 3 minutes at 200,000 records)",
    )
    parser.add_argument("--child-tracemalloc", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return _child(key=args.child, tracemalloc_on=args.child_tracemalloc)

    with tempfile.TemporaryDirectory(prefix="modelway-bench-batch-") as tmp:
        home = Path(tmp) / "home"
        env = {**os.environ, "MODELWAY_HOME": str(home), "MODELWAY_ENV": "local"}
        os.environ.update(env)
        _publish_model(home=home, workdir=Path(tmp))
        server, url = _start_server(home=home, env=env)
        env["MODELWAY_SERVING_URL"] = url
        try:
            rows: list[Row] = []
            for records in (args.baseline, args.records):
                key = f"inputs/{MODEL}/default/bench-{records}.jsonl"
                size = _write_input(home / "data" / key, records=records)
                plain = _run_child(key=key, env=env, tracemalloc_on=False)
                traced = (
                    _run_child(key=key, env=env, tracemalloc_on=True) if args.tracemalloc else None
                )
                rows.append((records, size, plain, traced))
        finally:
            server.terminate()
            server.wait(10)
    _report(rows)
    ok = all(r[2]["output_lines"] == r[0] and r[2]["status"] == "succeeded" for r in rows)
    return 0 if ok else 1


Row = tuple[int, int, dict[str, Any], dict[str, Any] | None]


def _report(rows: list[Row]) -> None:
    print(f"\n{'records':>9} {'input MB':>9} {'seconds':>8} {'records/s':>10} "
          f"{'maxrss MB':>10} {'py peak MB':>11} {'output lines':>13} status")  # fmt: skip
    for records, size, plain, traced in rows:
        peak = f"{traced['tracemalloc_peak_mb']:.2f}" if traced else "-"
        print(
            f"{records:>9} {size / 1e6:>9.1f} {plain['seconds']:>8.1f} "
            f"{records / plain['seconds']:>10.0f} {plain['maxrss_mb']:>10.1f} "
            f"{peak:>11} {plain['output_lines']:>13} {plain['status']}"
        )
    (base_n, _, base, base_t), (big_n, _, big, big_t) = rows
    ratios = [f"peak RSS x{big['maxrss_mb'] / base['maxrss_mb']:.2f}"]
    if base_t and big_t:
        ratio = big_t["tracemalloc_peak_mb"] / base_t["tracemalloc_peak_mb"]
        ratios.append(f"peak Python allocations x{ratio:.2f}")
    ratios.append(f"throughput x{(big_n / big['seconds']) / (base_n / base['seconds']):.2f}")
    print(f"\n{big_n / base_n:g}x the records: " + ", ".join(ratios))
    print(
        "exactly one output line per input record: "
        + ("yes" if all(r[2]["output_lines"] == r[0] for r in rows) else "NO")
    )


# Parent side -------------------------------------------------------------------------------
def _publish_model(*, home: Path, workdir: Path) -> None:
    sys.path.insert(0, str(ROOT))
    from functions.core.backends import make_artifact_store, make_registry
    from functions.core.publishing import check_artifact, publish_artifact
    from functions.core.settings import get_settings

    artifact = _digits_artifact(workdir / "model.tar.gz")
    settings = get_settings()
    registry = make_registry(settings)
    publish_artifact(
        path=artifact, registry=registry, store=make_artifact_store(settings), settings=settings,
        actor="benchmark", verify=check_artifact,
    )  # fmt: skip


def _digits_artifact(dest: Path) -> Path:
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weight = rng.standard_normal((64, 10)).astype(np.float32)
    bias = rng.standard_normal(10).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("Flatten", ["input"], ["flat"], axis=1),
            helper.make_node("MatMul", ["flat", "W"], ["mm"]),
            helper.make_node("Add", ["mm", "B"], ["logits"]),
            helper.make_node("ArgMax", ["logits"], ["label"], axis=1, keepdims=0),
        ],
        MODEL,
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 1, 8, 8])],
        [
            helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10]),
            helper.make_tensor_value_info("label", TensorProto.INT64, ["N"]),
        ],
        initializer=[numpy_helper.from_array(weight, "W"), numpy_helper.from_array(bias, "B")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    model_bytes = model.SerializeToString()
    manifest = {
        "name": MODEL,
        "sha256": hashlib.sha256(model_bytes).hexdigest(),
        "signature": {
            "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, 1, 8, 8]}],
            "outputs": [
                {"name": "logits", "datatype": "FP32", "shape": [-1, 10]},
                {"name": "label", "datatype": "INT64", "shape": [-1]},
            ],
        },
        "parity": {
            "samples": 1,
            "max_abs_diff": 0.0,
            "argmax_agreement": 1.0,
            "tolerance": 1e-4,
            "passed": True,
        },
        "description": "benchmark stand-in with the digits signature",
    }
    with tarfile.open(dest, "w:gz") as tar:
        for name, data in (
            ("model.onnx", model_bytes),
            ("modelway.json", json.dumps(manifest).encode()),
        ):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return dest


def _start_server(*, home: Path, env: dict[str, str]) -> tuple[subprocess.Popen[str], str]:
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "serving",
            "local",
            "--artifacts-dir",
            str(home / "artifacts"),
            "--endpoint-prefix",
            PREFIX,
            "--port",
            "0",
            "--log-level",
            "WARNING",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert server.stdout is not None
    for line in server.stdout:
        if "listening on" in line:
            return server, line.rsplit(" ", 1)[-1].strip()
    raise RuntimeError("the model server did not start")


def _write_input(path: Path, *, records: int) -> int:
    """Random 8x8 digits (ints 0..16), one flat JSON list per line, written in chunks."""
    import numpy as np

    rng = np.random.default_rng(records)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as out:
        for start in range(0, records, 10_000):
            block = rng.integers(0, 17, size=(min(10_000, records - start), 64))
            out.write("".join(json.dumps(img) + "\n" for img in block.tolist()))
    return path.stat().st_size


def _run_child(*, key: str, env: dict[str, str], tracemalloc_on: bool) -> dict[str, Any]:
    # A new modification time makes it a new upload (a new job): the same stored file
    # would otherwise be recognised as already scored and skipped.
    path = Path(env["MODELWAY_HOME"]) / "data" / key
    os.utime(path, ns=(time.time_ns(), time.time_ns()))
    command = [sys.executable, __file__, "--child", key]
    if tracemalloc_on:
        command.append("--child-tracemalloc")
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"scoring {key} failed:\n{done.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    if result["action"] != "finished":
        raise RuntimeError(f"{key} was not scored: {result}")
    return result


# Child side --------------------------------------------------------------------------------
def _child(*, key: str, tracemalloc_on: bool) -> int:
    import contextlib
    import resource
    import tracemalloc
    from urllib.parse import urlparse
    from urllib.request import url2pathname

    sys.path.insert(0, str(ROOT))
    from functions.batch.events import job_id_for, parse_notification
    from functions.batch.local import local_object_event
    from functions.core.settings import get_settings

    with contextlib.redirect_stdout(sys.stderr):  # the handler's logs
        from functions.batch.handler import get_deps, handler

        settings = get_settings()
        event = local_object_event(settings=settings, key=key)
        # Build the clients first (boto3 loads its service models once, ~20 MB): the peak
        # measured is then the scoring's own.
        deps = get_deps()
        _ = getattr(deps.runtime, "client", None)
        if tracemalloc_on:
            tracemalloc.start()
        started = time.perf_counter()
        summary = handler(event, None)
        seconds = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1] if tracemalloc_on else 0
        tracemalloc.stop()
    (ref,) = parse_notification(event)
    job = deps.registry.get_job(job_id=job_id_for(ref))
    output = Path(url2pathname(urlparse(job.output_uri or "").path))
    with open(output, "rb") as stream:
        lines = sum(1 for _ in stream)
    print(
        json.dumps(
            {
                "action": summary["jobs"][0]["action"],
                "status": job.status,
                "records": job.records,
                "seconds": seconds,
                "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "tracemalloc_peak_mb": peak / 1e6,
                "output_lines": lines,
                "requests": job.extra.get("requests"),
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
