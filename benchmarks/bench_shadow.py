"""What shadow traffic and request capture cost the caller, and how far a retrained digits
model agrees with the one it would replace.

On loopback, one local stack (model server + router, as ``modelway up`` runs them) serves
digits v1 (the default build) on alias ``default``; v2 is a retrain (``--seed``). The same
sequential client then sends the held-out digits in rounds, each round in three settings of
the alias, interleaved so that drift on a shared machine hits all three alike:
  * off      — no capture, no shadow (the baseline);
  * capture  — capture at 100%;
  * shadow   — capture at 100% and every request shadowed to v2.
It prints the caller's p50/p99 per setting as ratios to ``off`` measured in this same run,
then ``modelway compare``'s figures over the captured traffic: per version p50/p99 and the
agreement of v2 with v1 (argmax of the logits) on the shadowed requests.

    .venv/bin/python benchmarks/bench_shadow.py [--rounds 4] [--requests 200] [--seed 7]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.report import Row, write_report  # noqa: E402

SETTINGS = {
    "off": {"shadow_version": None, "capture_percent": 0},
    "capture": {"shadow_version": None, "capture_percent": 100},
    "shadow": {"shadow_version": 2, "shadow_percent": 100, "capture_percent": 100},
}


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--requests", type=int, default=200, help="per setting per round")
    parser.add_argument("--seed", type=int, default=7, help="the retrain's seed (v2)")
    parser.add_argument("--report-dir", type=Path, default=None)
    args = parser.parse_args(argv)

    home = Path(tempfile.mkdtemp(prefix="modelway-bench-shadow-"))
    os.environ.update(MODELWAY_HOME=str(home), MODELWAY_ENV="local")
    import httpx

    from cli.up import start_stack
    from functions.core import keys
    from functions.core.backends import Backends
    from functions.core.capture import compare_alias
    from functions.core.publishing import publish_artifact
    from functions.core.settings import get_settings
    from model_build.digits.build import build_digits
    from model_build.digits.data import load_split
    from model_build.verify import verify_artifact

    get_settings.cache_clear()
    settings = get_settings()
    backends = Backends.from_settings(settings)
    for seed, alias in ((None, "default"), (args.seed, None)):
        print(f"building digits (seed {seed or 'default'}) ...", file=sys.stderr)
        built = build_digits(out_dir=home / f"build-{seed}", seed=seed)
        publish_artifact(
            path=built.artifact,
            registry=backends.registry,
            store=backends.store,
            settings=settings,
            actor="bench",
            alias=alias,
            verify=verify_artifact,
        )
    _, admin = keys.create_key(registry=backends.registry, name="bench", models=["*"], admin=True)
    images = load_split().test_images
    bodies = [
        json.dumps(
            {"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 1, 8, 8],
                         "data": image.ravel().tolist()}]}
        ).encode()
        for image in images
    ]  # fmt: skip
    stack = start_stack(settings=settings, host="127.0.0.1", port=_port(), serving_port=_port())
    latencies: dict[str, list[float]] = {name: [] for name in SETTINGS}
    seconds: dict[str, float] = dict.fromkeys(SETTINGS, 0.0)
    headers = {"x-api-key": admin, "content-type": "application/json"}
    try:
        with httpx.Client(base_url=stack.router_url, headers=headers, timeout=30) as client:
            for body in bodies[:50]:  # warm both versions and the router
                client.post("/v2/models/digits/infer", content=body)
                client.post("/v2/models/digits/versions/2/infer", content=body)
            sent = 0
            for round_ in range(args.rounds):
                for name, traffic in SETTINGS.items():
                    put = client.put("/v1/models/digits/aliases/default", json=traffic)
                    put.raise_for_status()
                    time.sleep(1.5)  # the previous setting's shadow calls and writes finish
                    started = time.perf_counter()
                    for _ in range(args.requests):
                        body = bodies[sent % len(bodies)]
                        sent += 1
                        t0 = time.perf_counter()
                        response = client.post("/v2/models/digits/infer", content=body)
                        latencies[name].append((time.perf_counter() - t0) * 1000)
                        response.raise_for_status()
                    seconds[name] += time.perf_counter() - started
                print(f"round {round_ + 1}/{args.rounds} done", file=sys.stderr)
            client.put("/v1/models/digits/aliases/default", json=SETTINGS["off"]).raise_for_status()
        time.sleep(4)  # the capture writer's last batch (2 s) reaches the data directory
        report = compare_alias(
            registry=backends.registry, store=backends.store, model="digits", alias="default"
        )
    finally:
        stack.stop()

    from functions.core.capture.compare import percentile

    def p(values: list[float], q: float) -> float:
        return float(percentile(values, q) or 0.0)

    base50, base99 = p(latencies["off"], 50), p(latencies["off"], 99)
    rows = []
    print(f"\n{'setting':<10} {'p50 ms':>8} {'p99 ms':>8} {'p50 x':>7} {'p99 x':>7}")
    for name, values in latencies.items():
        p50, p99 = p(values, 50), p(values, 99)
        print(f"{name:<10} {p50:8.3f} {p99:8.3f} {p50 / base50:7.3f} {p99 / base99:7.3f}")
        rows.append(
            Row(
                target=name,
                concurrency=1,
                requests_per_s=len(values) / seconds[name],
                p50_ms=p50,
                p99_ms=p99,
                extra={
                    "requests": len(values),
                    "p50_ratio": p50 / base50,
                    "p99_ratio": p99 / base99,
                },
            )
        )
    (pair,) = report["pairs"]
    print("\nmodelway compare (captured traffic):")
    for v in report["versions"]:
        figures = f"p50 {v['p50_ms']} ms p99 {v['p99_ms']} ms"
        print(
            f"  v{v['version']} {v['role']:<8} requests {v['requests']:>5} "
            f"errors {v['error_rate']:.2%} {figures}"
        )
    print(
        f"  agreement v{pair['shadow']} vs v{pair['primary']}: {pair['agreement']} "
        f"over {pair['compared']} paired requests"
    )
    summary: dict[str, Any] = {
        "agreement": pair["agreement"],
        "paired": pair["compared"],
        "outputs": pair["outputs"],
        "versions": [
            {k: v[k] for k in ("version", "role", "requests", "error_rate", "p50_ms", "p99_ms")}
            for v in report["versions"]
        ],
    }
    json_path, png_path = write_report(
        "bench_shadow",
        rows,
        baseline="off",
        title="Caller latency with capture / shadow at 100% (digits, loopback)",
        parameters={**vars(args), "report_dir": None, "compare": summary},
        out_dir=args.report_dir,
    )
    print(f"\nwrote {json_path} and {png_path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
