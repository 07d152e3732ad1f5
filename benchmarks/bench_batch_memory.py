"""Batch scoring's memory does not grow with the file: a 200,000-record digits JSON Lines file
(or, with ``--model minilm``, 100,000 sentences for the real all-MiniLM-L6-v2) is scored through
the batch handler on the local stack, beside a run of a tenth of it in the same run, and the
peaks are compared.

What runs: the digits demo model (built here as ``modelway build digits`` builds it) is
published into a fresh local state directory and served by the real model server
(``python -m serving local``, its own process); each file is scored by
``functions.batch.handler.handler`` in a fresh child process, over the real runtime client
(boto3 ``sagemaker-runtime`` → loopback), the SQLite registry and the directory store —
exactly what ``modelway batch submit`` runs. The input is scikit-learn's digit images over
and over, so the labels scored can be checked against the truth. For ``minilm`` the model is
the artifact of ``modelway build minilm`` (built once into ``$MODELWAY_HOME/build/minilm``, as
``bench_transformer.py`` does), each line a JSON string, the parity gate's sentences over and
over; each result's embedding must match (cosine >= 0.9999) the one the same model server gives
that sentence asked alone, so results are checked to be the right ones, in input order.

What is measured, per file, in the child that scored it (the model server is not counted):
the peak resident set (``VmHWM`` of the child's own address space, read before the output is
checked), the peak of Python allocations (``tracemalloc``, in a second child: it slows Python
down, so throughput comes from the first), the wall time, that the output holds exactly one
line per input record, and the share of records whose result is right (the digit's true
label; the sentence's embedding).

    .venv/bin/python benchmarks/bench_batch_memory.py [--model digits|minilm]
        [--records 200000] [--baseline 20000] [--tracemalloc]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PREFIX = "modelway-local"
# Records in the big file and in the small one it is compared with, per model.
SIZES = {"digits": (200_000, 20_000), "minilm": (100_000, 10_000)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", choices=sorted(SIZES), default="digits")
    parser.add_argument("--records", type=int, help="default 200,000 (digits), 100,000 (minilm)")
    parser.add_argument("--baseline", type=int, help="default a tenth of the default records")
    parser.add_argument(
        "--build-root", type=Path, help="minilm: where its artifact is built/reused"
    )
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
    model = args.model
    records_big = args.records or SIZES[model][0]
    records_small = args.baseline or SIZES[model][1]

    artifact = None
    if model == "minilm":
        sys.path.insert(0, str(ROOT))
        from bench_transformer import artifact_for

        from functions.core.settings import get_settings

        build_root = args.build_root or get_settings().home / "build"
        artifact = artifact_for("fp32", build_root=build_root)

    with tempfile.TemporaryDirectory(prefix="modelway-bench-batch-") as tmp:
        home = Path(tmp) / "home"
        env = {**os.environ, "MODELWAY_HOME": str(home), "MODELWAY_ENV": "local"}
        os.environ.update(env)
        _publish_model(home=home, workdir=Path(tmp), model=model, artifact=artifact)
        server, url = _start_server(home=home, env=env)
        env["MODELWAY_SERVING_URL"] = url
        try:
            pool = _sentence_pool(url=url, home=home) if model == "minilm" else 0
            rows: list[Row] = []
            for records in (records_small, records_big):
                key = f"inputs/{model}/default/bench-{records}.jsonl"
                path = home / "data" / key
                size = (
                    _write_sentences(path, records=records, pool=pool)
                    if model == "minilm"
                    else _write_input(path, records=records)
                )
                plain = _run_child(key=key, env=env, tracemalloc_on=False)
                traced = (
                    _run_child(key=key, env=env, tracemalloc_on=True) if args.tracemalloc else None
                )
                rows.append((records, size, plain, traced))
        finally:
            server.terminate()
            server.wait(10)
    _report(rows, model=model)
    ok = all(r[2]["output_lines"] == r[0] and r[2]["status"] == "succeeded" for r in rows)
    return 0 if ok else 1


Row = tuple[int, int, dict[str, Any], dict[str, Any] | None]


def _report(rows: list[Row], *, model: str) -> None:
    print(f"\n{model}:")
    print(f"{'records':>9} {'input MB':>9} {'seconds':>8} {'records/s':>10} "
          f"{'maxrss MB':>10} {'py peak MB':>11} {'output lines':>13} {'accuracy':>9} "
          "status")  # fmt: skip
    for records, size, plain, traced in rows:
        peak = f"{traced['tracemalloc_peak_mb']:.2f}" if traced else "-"
        print(
            f"{records:>9} {size / 1e6:>9.1f} {plain['seconds']:>8.1f} "
            f"{records / plain['seconds']:>10.0f} {plain['maxrss_mb']:>10.1f} "
            f"{peak:>11} {plain['output_lines']:>13} {plain['accuracy']:>9.4f} "
            f"{plain['status']}"
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
def _publish_model(*, home: Path, workdir: Path, model: str, artifact: Path | None) -> None:
    sys.path.insert(0, str(ROOT))
    from functions.core.archive import check_artifact
    from functions.core.backends import make_artifact_store, make_registry
    from functions.core.publishing import publish_artifact
    from functions.core.settings import get_settings

    if artifact is None:
        artifact = _digits_artifact(workdir / "model.tar.gz")
    get_settings.cache_clear()  # MODELWAY_HOME is the run's own now
    settings = get_settings()
    registry = make_registry(settings)
    publish_artifact(
        path=artifact, registry=registry, store=make_artifact_store(settings), settings=settings,
        actor="benchmark", verify=check_artifact,
    )  # fmt: skip


def _digits_artifact(dest: Path) -> Path:
    """The real demo model, built by ``modelway build digits`` (about 20 s) in its own
    process, so torch never enters this one."""
    subprocess.run(
        [sys.executable, "-m", "cli", "build", "digits", "--out", str(dest.parent)],
        cwd=ROOT, check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
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
    """scikit-learn's 1,797 digit images over and over, one flat JSON list of 64 pixel values
    per line; their labels go beside the file so the scores can be checked."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = [json.dumps([int(p) for p in row]) + "\n" for row in digits.data]
    labels = [int(t) for t in digits.target]
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as out, open(_labels_path(path), "w") as truth:
        for start in range(0, records, 10_000):
            picks = [i % len(images) for i in range(start, min(start + 10_000, records))]
            out.write("".join(images[i] for i in picks))
            truth.write("".join(f"{labels[i]}\n" for i in picks))
    return path.stat().st_size


def _sentence_pool(*, url: str, home: Path) -> int:
    """The sentences the minilm files cycle through, each embedded alone by the model server
    (the truth a result is checked against), saved beside the inputs. Returns their count."""
    import urllib.request

    import numpy as np
    from bench_transformer import sentences

    pool = sentences()
    vectors = []
    for sentence in pool:
        body = {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": [sentence]}]}
        request = urllib.request.Request(
            f"{url}/endpoints/{PREFIX}-minilm/invocations",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            vectors.append(json.load(response)["outputs"][0]["data"])
    (home / "data").mkdir(parents=True, exist_ok=True)
    np.save(home / "data" / "sentences.npy", np.array(vectors, dtype=np.float32))
    (home / "data" / "sentences.json").write_text(json.dumps(pool))
    return len(pool)


def _write_sentences(path: Path, *, records: int, pool: int) -> int:
    """One JSON string per line (a one-element text input), the pool over and over; each
    line's place in the pool goes beside the file."""
    sentences = json.loads((path.parents[3] / "sentences.json").read_text())
    lines = [json.dumps(s) + "\n" for s in sentences]
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as out, open(_labels_path(path), "w") as truth:
        for start in range(0, records, 10_000):
            picks = [i % pool for i in range(start, min(start + 10_000, records))]
            out.write("".join(lines[i] for i in picks))
            truth.write("".join(f"{i}\n" for i in picks))
    return path.stat().st_size


def _labels_path(path: Path) -> Path:
    # Outside inputs/, so the watcher of a running stack would not take it for an input.
    return path.parents[3] / f"{path.stem}.labels"


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
    # Before the output is checked: checking it is not what is measured.
    maxrss_mb = _peak_rss_mb()
    lines = correct = 0
    truth_path = _labels_path(settings.data_dir / key)
    embeddings = None
    if "/minilm/" in key:
        import numpy as np

        embeddings = np.load(settings.data_dir / "sentences.npy")
    with open(output, "rb") as stream, open(truth_path) as truth:
        # Results are in input order, one per record: line n answers input line n.
        for line, expected in zip(stream, truth, strict=True):
            lines += 1
            outputs = {o["name"]: o for o in json.loads(line)["outputs"]}
            if embeddings is None:
                correct += outputs["label"]["data"][0] == int(expected)
            else:
                got = np.asarray(outputs["embedding"]["data"], dtype=np.float32)
                correct += float(got @ embeddings[int(expected)]) >= 0.9999
    print(
        json.dumps(
            {
                "action": summary["jobs"][0]["action"],
                "status": job.status,
                "records": job.records,
                "seconds": seconds,
                "maxrss_mb": maxrss_mb,
                "tracemalloc_peak_mb": peak / 1e6,
                "output_lines": lines,
                "accuracy": correct / max(lines, 1),
                "requests": job.extra.get("requests"),
            }
        )
    )
    return 0


def _peak_rss_mb() -> float:
    """The high-water mark of this process's resident set since its exec. (``ru_maxrss``
    would also count the parent's peak, which Linux carries over through fork and exec.)"""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


if __name__ == "__main__":
    raise SystemExit(main())
