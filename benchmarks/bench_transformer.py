"""A real transformer served: all-MiniLM-L6-v2 sentence embeddings through modelway's model
server, against the same model in eager torch behind FastAPI, measured in the same run.

Targets, each its own process on loopback, sent the same Open Inference Protocol JSON
requests, one sentence each, by the same client at concurrency 1 and 16 (one target at a time,
in rounds with the order rotating, so load from elsewhere on the machine falls on each alike):
  * torch-eager      — the baseline: ``transformers`` + FastAPI/uvicorn, one forward pass per
                       request (``minilm_eager_server.py``), what a team would write themselves;
  * modelway         — modelway's model server (``python -m serving serve``, the SageMaker
                       hosting contract) on the FP32 artifact of ``modelway build minilm``:
                       dynamic batching, length buckets;
  * modelway-nobatch — the same with dynamic batching off (``MODELWAY_MAX_BATCH_SIZE=1``);
  * modelway-nobucket — with ``--targets``: batching on, each batch padded to its longest row
                       rather than run in length buckets (``MODELWAY_LENGTH_BUCKETS=0``);
  * modelway-int8    — the ``--quantize int8`` artifact (ONNX Runtime dynamic quantization);
  * modelway-fp16    — with ``--fp16``: the FP16 artifact, made for the CUDA provider (on a
                       CPU it is measured, not a goal).
Every side gets every usable core (ONNX Runtime intra-op threads, ``torch.set_num_threads``),
threads that do not spin when idle on both.
The sentences are the parity gate's (short, long, non-ASCII) up to the 256-token bound, each
client thread starting at a different one, so concurrent requests differ in length. Before it
is timed, each target's embedding of a sentence is compared with the baseline's (cosine).

It prints requests/s, p50 and p99 as ratios to the baseline at the same concurrency, the
issue's goals against them, and INT8 (and FP16) throughput beside their size and cosine to
FP32; the JSON and chart go through ``report.py`` into docs/figures.

Artifacts are built once (``modelway build minilm [--quantize int8 | --fp16]``, minutes each)
into ``$MODELWAY_HOME/build/minilm[-int8|-fp16]`` and reused from there.

    .venv/bin/python benchmarks/bench_transformer.py [--requests 960] [--quick] [--fp16]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_local_path import Result, Target, connect, drive, free_port, wait_ready  # noqa: E402

BASELINE = "torch-eager"
# Sentences the parity gate checks, minus those longer than the model's 256-token bound: a
# request is a sentence or a paragraph, not a document cut short.
POOL_SIZE = 240
MAX_LENGTH = 256


@dataclass(frozen=True)
class Variant:
    name: str
    precision: str  # fp32 | int8 | fp16; torch-eager: the reference model
    env: dict[str, str]


VARIANTS = {
    BASELINE: Variant(BASELINE, "fp32", {}),
    "modelway": Variant("modelway", "fp32", {}),
    "modelway-nobatch": Variant("modelway-nobatch", "fp32", {"MODELWAY_MAX_BATCH_SIZE": "1"}),
    "modelway-nobucket": Variant("modelway-nobucket", "fp32", {"MODELWAY_LENGTH_BUCKETS": "0"}),
    "modelway-int8": Variant("modelway-int8", "int8", {}),
    "modelway-fp16": Variant("modelway-fp16", "fp16", {}),
}


def artifact_for(precision: str, *, build_root: Path) -> Path:
    """``build_root/minilm[-int8|-fp16]/model.tar.gz``, built by ``modelway build minilm`` (in
    its own process) when it is not there yet."""
    suffix = "" if precision == "fp32" else f"-{precision}"
    out = build_root / f"minilm{suffix}"
    artifact = out / "model.tar.gz"
    if not artifact.is_file():
        flag = {"fp32": [], "int8": ["--quantize", "int8"], "fp16": ["--fp16"]}[precision]
        print(f"building {artifact} (modelway build minilm {' '.join(flag)}; minutes) ...")
        subprocess.run(
            [sys.executable, "-m", "cli", "build", "minilm", *flag, "--out", str(out)],
            cwd=ROOT, check=True, stdout=subprocess.DEVNULL,
        )  # fmt: skip
    return artifact


def manifest_of(artifact: Path) -> dict[str, Any]:
    with tarfile.open(artifact) as archive:
        member = archive.extractfile("modelway.json")
        assert member is not None
        manifest: dict[str, Any] = json.load(member)
    return manifest


def sentences(*, tokens_below: int = MAX_LENGTH) -> list[str]:
    """The parity gate's sentences (seeded: the same every run) that are not empty and fit
    the model's bound, in order."""
    from tokenizers import Tokenizer

    from model_build.hf.sentences import parity_sentences
    from model_build.minilm import model_directory

    tokenizer = Tokenizer.from_file(str(model_directory() / "tokenizer.json"))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return [
        s
        for s in parity_sentences(count=POOL_SIZE, max_length=MAX_LENGTH)
        if s.strip() and len(tokenizer.encode(s).ids) < tokens_below
    ]


def request_bodies() -> list[bytes]:
    """One Open Inference Protocol JSON body per sentence."""
    return [
        json.dumps(
            {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": [s]}]}
        ).encode()
        for s in sentences()
    ]


def embed(target: Target, body: bytes) -> list[float]:
    conn = connect(target.port)
    conn.request("POST", target.path, body=body, headers={"Content-Type": "application/json"})
    response = conn.getresponse()
    payload = response.read()
    conn.close()
    if response.status != 200:
        raise RuntimeError(f"{target.name}: {response.status} {payload[:300]!r}")
    (output,) = json.loads(payload)["outputs"]
    data: list[float] = output["data"]
    return data


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    norms = (sum(x * x for x in a) * sum(y * y for y in b)) ** 0.5
    return dot / norms


def start(variant: Variant, *, artifact: Path | None, threads: int) -> tuple[Target, Any]:
    """The variant's server, alone, ready to answer."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), **variant.env}
    if artifact is None:
        # OpenMP threads that sleep when idle, as ONNX Runtime's are told to (``allow_spinning
        # 0``): with torch's default spin-waiting, a busy 2-core machine made the baseline
        # 5 to 20 times slower at concurrency 1 (1 to 6 requests/s instead of about 28), which
        # would flatter every ratio here.
        env["OMP_WAIT_POLICY"] = "PASSIVE"
        command = [sys.executable, str(ROOT / "benchmarks" / "minilm_eager_server.py"),
                   "--port", str(port), "--threads", str(threads)]  # fmt: skip
    else:
        env["MODELWAY_ORT_THREADS"] = str(threads)
        command = [sys.executable, "-m", "serving", "serve",
                   "--model-dir", str(artifact.parent), "--host", "127.0.0.1",
                   "--port", str(port), "--log-level", "WARNING"]  # fmt: skip
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
    try:
        wait_ready(f"http://127.0.0.1:{port}/ping", timeout=300)
    except BaseException:
        process.kill()
        raise
    return Target(variant.name, port, "/invocations", {}, (process.pid,)), process


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--requests", type=int, default=960, help="per target at concurrency 16 (a quarter at 1)"
    )
    parser.add_argument("--levels", default="1,16", help="concurrency levels")
    parser.add_argument(
        "--quick", action="store_true", help="96 requests per row, no INT8 row: a smoke run"
    )
    parser.add_argument("--fp16", action="store_true", help="also the FP16 artifact")
    parser.add_argument(
        "--targets", help=f"comma-separated subset of {', '.join(VARIANTS)} (baseline always)"
    )
    parser.add_argument(
        "--build-root", type=Path, help="where artifacts are built/reused ($MODELWAY_HOME/build)"
    )
    parser.add_argument(
        "--threads", type=int, help="compute threads per server (default: usable cores)"
    )
    parser.add_argument("--report-dir", type=Path, help="JSON + PNG (default docs/figures)")
    args = parser.parse_args()

    from functions.core.settings import get_settings
    from serving.config import usable_cpus

    levels = [int(level) for level in args.levels.split(",")]
    requests = 96 if args.quick else args.requests
    threads = args.threads or usable_cpus()
    names = ["modelway", "modelway-nobatch"] + ([] if args.quick else ["modelway-int8"])
    names += ["modelway-fp16"] if args.fp16 else []
    if args.targets:
        names = [n.strip() for n in args.targets.split(",") if n.strip() != BASELINE]
        unknown = [n for n in names if n not in VARIANTS]
        if unknown:
            parser.error(f"unknown targets {unknown}; known: {list(VARIANTS)}")
    variants = [VARIANTS[BASELINE], *(VARIANTS[n] for n in names)]
    build_root = args.build_root or get_settings().home / "build"
    artifacts = {
        p: artifact_for(p, build_root=build_root)
        for p in dict.fromkeys(v.precision for v in variants[1:])
    }
    manifests = {p: manifest_of(a) for p, a in artifacts.items()}
    bodies = request_bodies()
    probe = bodies[len(bodies) // 2]

    # Every server is started (and checked, and warmed up) first; then each row is measured
    # in rounds, the targets in a rotating order within each round, so that load from
    # elsewhere on the machine falls on every target alike. An idle server costs nothing.
    servers: list[tuple[Target, Any]] = []
    probes: dict[str, float] = {}
    results: list[Result] = []
    rounds = 2 if args.quick else 4
    try:
        reference: list[float] | None = None
        for variant in variants:
            artifact = None if variant.name == BASELINE else artifacts[variant.precision]
            target, process = start(variant, artifact=artifact, threads=threads)
            servers.append((target, process))
            got = embed(target, probe)
            reference = got if reference is None else reference
            probes[variant.name] = cosine(got, reference)
            drive(target, bodies, concurrency=4, total=max(32, requests // 10))  # warm-up
        targets = [target for target, _ in servers]
        for level in levels:
            total = requests if level >= 16 else max(level, requests // 4)
            parts: dict[str, list[Result]] = {t.name: [] for t in targets}
            for round_ in range(rounds):
                shift = round_ % len(targets)
                for target in targets[shift:] + targets[:shift]:
                    parts[target.name].append(
                        drive(target, bodies, concurrency=level, total=total // rounds)
                    )
            for target in targets:
                results.append(merge(parts[target.name]))
                print(f"  {target.name:<17} conc {level:>2}: {results[-1].throughput:7.1f} req/s")
    finally:
        for _, process in servers:
            process.terminate()
        for _, process in servers:
            process.wait(30)

    print_table(results, levels=levels, requests=requests, threads=threads, sentences=len(bodies))
    print_goals(results, levels=levels, manifests=manifests, probes=probes, variants=variants)

    from report import Row, write_report

    write_report(
        "bench_transformer",
        [
            Row(r.target, r.concurrency, r.throughput, r.percentile(50), r.percentile(99),
                {"requests": r.requests, "seconds": r.seconds, "server_cpu_s": list(r.cpu_s),
                 "cosine_to_baseline": probes.get(r.target)})
            for r in results
        ],
        baseline=BASELINE,
        title="all-MiniLM-L6-v2, one sentence per request: torch eager + FastAPI vs modelway",
        parameters={
            "requests_conc16": requests, "levels": levels, "threads": threads,
            "sentences": len(bodies),
            "sizes_bytes": {p: m["metrics"]["size_bytes"] for p, m in manifests.items()},
            "parity": {p: {k: m["parity"].get(k) for k in ("min_cosine", "mean_cosine")}
                       for p, m in manifests.items()},
        },
        out_dir=args.report_dir,
    )  # fmt: skip
    return 0


def merge(parts: Sequence[Result]) -> Result:
    """One row from the rounds it was measured in."""
    first = parts[0]
    return Result(
        first.target,
        first.concurrency,
        sum(p.requests for p in parts),
        sum(p.seconds for p in parts),
        [ms for p in parts for ms in p.latencies_ms],
        tuple(sum(cpu) for cpu in zip(*(p.cpu_s for p in parts), strict=True)),
    )


def _ratio(value: float, base: float) -> float:
    return value / base if base else float("nan")


def print_table(
    results: list[Result], *, levels: list[int], requests: int, threads: int, sentences: int
) -> None:
    print(
        f"\nall-MiniLM-L6-v2, one sentence per request ({sentences} sentences in turn), "
        f"{requests} requests per row at concurrency 16, {threads} compute threads per server"
    )
    print(f"{'target':<17} {'conc':>4} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8}"
          f"   {'req/s x':>8} {'p50 x':>7} {'p99 x':>7}   {'server cpu ms/req':>17}"
          f"   (x = ratio to {BASELINE})")  # fmt: skip
    for level in levels:
        row = [r for r in results if r.concurrency == level]
        base = next(r for r in row if r.target == BASELINE)
        for r in row:
            print(
                f"{r.target:<17} {level:>4} {r.throughput:>8.1f} {r.percentile(50):>8.2f} "
                f"{r.percentile(99):>8.2f}   {_ratio(r.throughput, base.throughput):>8.2f} "
                f"{_ratio(r.percentile(50), base.percentile(50)):>7.2f} "
                f"{_ratio(r.percentile(99), base.percentile(99)):>7.2f}   "
                f"{r.cpu_ms_per_request:>17}"
            )


def print_goals(
    results: list[Result],
    *,
    levels: list[int],
    manifests: dict[str, dict[str, Any]],
    probes: dict[str, float],
    variants: list[Variant],
) -> None:
    by = {(r.target, r.concurrency): r for r in results}
    high, low = max(levels), min(levels)

    def check(ok: bool) -> str:
        return "met" if ok else "NOT met"

    print()
    base, mw = by.get((BASELINE, high)), by.get(("modelway", high))
    if base and mw:
        x = mw.throughput / base.throughput
        p99 = mw.percentile(99) / base.percentile(99)
        print(f"concurrency {high}: modelway {x:.2f}x the baseline's throughput (goal >= 3: "
              f"{check(x >= 3)}), p99 {p99:.2f}x (goal <= 1: {check(p99 <= 1)})")  # fmt: skip
        if mw.cpu_s and base.cpu_s:
            # On a machine shared with other work, throughput also depends on the share of the
            # cores each server's threads win; server CPU time per request does not.
            cpu = (sum(base.cpu_s) / base.requests) / (sum(mw.cpu_s) / mw.requests)
            print(f"concurrency {high}: the baseline spends {cpu:.2f}x modelway's server CPU "
                  "time per request")  # fmt: skip
    base, mw = by.get((BASELINE, low)), by.get(("modelway", low))
    if base and mw and low != high:
        p50 = mw.percentile(50) / base.percentile(50)
        print(f"concurrency {low}: modelway p50 {p50:.2f}x the baseline's "
              f"(goal <= 1: {check(p50 <= 1)}), throughput "
              f"{mw.throughput / base.throughput:.2f}x")  # fmt: skip
    on, off = by.get(("modelway", high)), by.get(("modelway-nobatch", high))
    if on and off:
        x = on.throughput / off.throughput
        print(f"concurrency {high}: dynamic batching on / off = {x:.2f}x throughput "
              f"(goal >= 2: {check(x >= 2)}), p99 {on.percentile(99):.1f} vs "
              f"{off.percentile(99):.1f} ms")  # fmt: skip
    fp32 = manifests.get("fp32")
    for variant in variants:
        if variant.precision == "fp32" or variant.precision not in manifests:
            continue
        m = manifests[variant.precision]
        ratios = ", ".join(
            f"conc {level} {_ratio(by[(variant.name, level)].throughput, fp32_at.throughput):.2f}x"
            for level in levels
            if (variant.name, level) in by and (fp32_at := by.get(("modelway", level)))
        )
        size = m["metrics"]["size_bytes"] / 1e6
        fp32_size = f" vs FP32 {fp32['metrics']['size_bytes'] / 1e6:.1f} MB" if fp32 else ""
        print(
            f"{variant.precision.upper()}: throughput vs FP32 {ratios or '-'}; "
            f"cosine to FP32 (build gate, {m['parity'].get('samples')} sentences) "
            f"min {m['parity'].get('min_cosine'):.4f} mean {m['parity'].get('mean_cosine'):.5f}; "
            f"served probe vs torch {probes.get(variant.name, float('nan')):.4f}; "
            f"model {size:.1f} MB{fp32_size}"
        )
    served = ", ".join(f"{name} {value:.5f}" for name, value in probes.items())
    print(f"cosine of each target's embedding of one sentence to the baseline's: {served}")


if __name__ == "__main__":
    started = time.monotonic()
    status = main()
    print(f"({time.monotonic() - started:.0f} s)")
    raise SystemExit(status)
