"""Throughput and latency of the local request path, against a torch-eager baseline.

Starts, on loopback, in separate processes:
  * baseline  — the same digits model in torch eager mode behind a minimal HTTP server;
  * serving   — modelway's model server alone, on the SageMaker runtime path;
  * modelway  — the whole path: router (key check, alias, validation) → model server;
  * trivial   — a server that answers every request with the same few bytes: what the load
                generator itself can do (its ceiling), so that it is known not to be the
                bottleneck of the rows above.
Each gets the same Open Inference Protocol JSON request (one digit) at concurrency 1 and 16,
and the script prints requests/s and p50/p99 latency, each as a ratio to the baseline, and the
router path's throughput as a share of the model server's alone, all measured in this same
run. Model compute is pinned to one thread on every side.

    .venv/bin/python benchmarks/bench_local_path.py [--requests 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Target:
    name: str
    port: int
    path: str
    headers: dict[str, str]
    # The server-side processes whose CPU time a request costs (Linux /proc), if known.
    pids: tuple[int, ...] = ()


@dataclass(frozen=True)
class Result:
    target: str
    concurrency: int
    requests: int
    seconds: float
    latencies_ms: list[float]
    # CPU seconds the target's processes spent per process, over the run (empty if unknown).
    cpu_s: tuple[float, ...] = ()

    @property
    def cpu_ms_per_request(self) -> str:
        if not self.cpu_s:
            return "-"
        return "+".join(f"{1e3 * s / self.requests:.2f}" for s in self.cpu_s)

    @property
    def throughput(self) -> float:
        return self.requests / self.seconds

    def percentile(self, q: float) -> float:
        return statistics.quantiles(self.latencies_ms, n=100, method="inclusive")[int(q) - 1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(url: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} not ready after {timeout:.0f} s")


def connect(port: int) -> http.client.HTTPConnection:
    """A keep-alive connection with Nagle off, so no request waits on a delayed ACK."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.connect()
    assert conn.sock is not None
    conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return conn


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` so far (Linux)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def drive(target: Target, body: bytes | Sequence[bytes], *, concurrency: int, total: int) -> Result:
    """``total`` requests from ``concurrency`` threads, each on its own keep-alive connection.
    ``body``: one request body, or several that each thread sends in turn (thread ``i``
    starting at the ``i``-th, so concurrent requests differ)."""
    bodies = [body] if isinstance(body, bytes) else list(body)
    per_thread = total // concurrency
    latencies: list[list[float]] = [[] for _ in range(concurrency)]
    errors: list[str] = []
    barrier = threading.Barrier(concurrency + 1)

    def worker(slot: int) -> None:
        conn = connect(target.port)
        headers = {"Content-Type": "application/json", **target.headers}
        barrier.wait()
        try:
            for n in range(per_thread):
                started = time.perf_counter()
                conn.request(
                    "POST", target.path, body=bodies[(slot + n) % len(bodies)], headers=headers
                )
                response = conn.getresponse()
                payload = response.read()
                latencies[slot].append((time.perf_counter() - started) * 1000)
                if response.status != 200:
                    errors.append(f"{response.status} {payload[:200]!r}")
        except OSError as exc:  # a dropped connection fails the run, not just this thread
            errors.append(repr(exc))
        conn.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(concurrency)]
    for thread in threads:
        thread.start()
    barrier.wait()
    cpu_before = [cpu_seconds(pid) for pid in target.pids]
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    cpu = tuple(cpu_seconds(pid) - b for pid, b in zip(target.pids, cpu_before, strict=True))
    if errors:
        raise RuntimeError(f"{target.name}: {len(errors)} failed requests, e.g. {errors[0]}")
    flat = [ms for chunk in latencies for ms in chunk]
    return Result(target.name, concurrency, len(flat), seconds, flat, cpu)


@dataclass(frozen=True)
class LocalModel:
    """The digits demo published over the local backend in ``home``, and a key for it."""

    home: Path
    secret: str
    body: bytes  # one real digit as an Open Inference Protocol JSON request
    label: int
    endpoint: str  # the model's endpoint name on the model server's runtime path


def publish_digits(home: Path) -> LocalModel:
    """Train, export and publish the digits model into ``home`` (``MODELWAY_HOME``)."""
    os.environ.update({"MODELWAY_HOME": str(home), "MODELWAY_ENV": "local"})
    from functions.core import keys
    from functions.core.backends import make_artifact_store, make_registry
    from functions.core.publishing import publish_artifact
    from functions.core.settings import get_settings
    from model_build.digits import build_digits, load_sample
    from model_build.verify import verify_artifact

    get_settings.cache_clear()
    settings = get_settings()
    registry = make_registry(settings)
    build = build_digits(out_dir=home / "build")
    publish_artifact(
        path=build.artifact, registry=registry, store=make_artifact_store(settings),
        settings=settings, actor="bench", alias="default", verify=verify_artifact,
    )  # fmt: skip
    _, secret = keys.create_key(registry=registry, name="bench", models=["digits"], admin=False)
    pixels, label = load_sample(index=-1)
    body = json.dumps(
        {"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 1, 8, 8], "data": pixels}]}
    ).encode()
    endpoint = f"{settings.resolved_endpoint_prefix}-digits"
    return LocalModel(home=home, secret=secret, body=body, label=label, endpoint=endpoint)


def start_serving(model: LocalModel, *, port: int) -> subprocess.Popen[bytes]:
    """modelway's model server alone over ``model.home``, ready to answer."""
    from functions.core.settings import get_settings

    settings = get_settings()
    process = subprocess.Popen(
        [sys.executable, "-m", "serving", "local",
         "--artifacts-dir", str(settings.artifacts_dir),
         "--endpoint-prefix", settings.resolved_endpoint_prefix,
         "--host", "127.0.0.1", "--port", str(port), "--log-level", "WARNING"],
    )  # fmt: skip
    wait_ready(f"http://127.0.0.1:{port}/ping")
    return process


_TRIVIAL_ANSWER = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"


class _Trivial(asyncio.Protocol):
    """Answers each complete request (headers + Content-Length body) with ``_TRIVIAL_ANSWER``."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: Any = transport  # uvloop's transports are not asyncio.Transport
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            head = self.buffer[:end].lower()
            at = head.find(b"content-length:")
            size = int(head[at + 15 :].split(b"\r\n", 1)[0]) if at >= 0 else 0
            if len(self.buffer) < end + 4 + size:
                return
            self.buffer = self.buffer[end + 4 + size :]
            self.transport.write(_TRIVIAL_ANSWER)


def serve_trivial(port: int) -> None:
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    loop = asyncio.new_event_loop()
    server = loop.run_until_complete(loop.create_server(_Trivial, "127.0.0.1", port))
    loop.run_until_complete(server.serve_forever())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="per target and level")
    parser.add_argument("--levels", default="1,16", help="concurrency levels")
    parser.add_argument("--report-dir", type=Path, help="JSON + PNG (default docs/figures)")
    parser.add_argument("--trivial-server", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.trivial_server:
        serve_trivial(args.trivial_server)
        return 0
    levels = [int(level) for level in args.levels.split(",")]

    model = publish_digits(Path(tempfile.mkdtemp(prefix="modelway-bench-")))
    from cli.up import start_stack
    from functions.core.settings import get_settings

    settings = get_settings()
    body = model.body

    # One compute thread per model process on every side, so the comparison is like for like.
    os.environ["MODELWAY_ORT_THREADS"] = "1"
    os.environ["MODELWAY_KEY_CACHE_TTL_SECONDS"] = "30"
    baseline_port, trivial_port = free_port(), free_port()
    baseline = subprocess.Popen(
        [sys.executable, str(ROOT / "benchmarks" / "torch_eager_server.py"),
         "--port", str(baseline_port), "--threads", "1"],
    )  # fmt: skip
    trivial = subprocess.Popen([sys.executable, __file__, "--trivial-server", str(trivial_port)])
    stack = start_stack(
        settings=settings, host="127.0.0.1", port=free_port(), serving_port=free_port()
    )
    try:
        wait_ready(f"http://127.0.0.1:{baseline_port}/")
        serving_port = int(stack.serving_url.rsplit(":", 1)[1])
        router_port = int(stack.router_url.rsplit(":", 1)[1])
        serving_pid, router_pid = (process.pid for process in stack.processes)
        infer, key = "/v2/models/digits/infer", {"x-api-key": model.secret}
        targets = [
            Target("torch-eager", baseline_port, infer, {}, (baseline.pid,)),
            Target(
                "serving", serving_port, f"/endpoints/{model.endpoint}/invocations", {},
                (serving_pid,),
            ),
            Target("modelway", router_port, infer, key, (router_pid, serving_pid)),
        ]  # fmt: skip
        for target in targets:  # each answers the right digit before it is timed
            conn = connect(target.port)
            headers = {"Content-Type": "application/json", **target.headers}
            conn.request("POST", target.path, body=body, headers=headers)
            answer = json.loads(conn.getresponse().read())
            got = next(o for o in answer["outputs"] if o["name"] == "label")["data"][0]
            assert got == model.label, f"{target.name} answered {got}, expected {model.label}"
            drive(target, body, concurrency=4, total=200)  # warm-up
        ceiling = Target("trivial", trivial_port, "/", {}, (trivial.pid,))
        drive(ceiling, body, concurrency=4, total=200)

        results = [
            drive(target, body, concurrency=level, total=args.requests)
            for level in levels
            for target in [*targets, ceiling]
        ]
    finally:
        stack.stop()
        for process in (baseline, trivial):
            process.terminate()
            process.wait()

    print(f"\ndigits model, {args.requests} requests per row, 1 compute thread per model process")
    print(f"{'target':<12} {'conc':>4} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8}"
          f"   {'req/s x':>8} {'p50 x':>7} {'p99 x':>7}   {'server cpu ms/req':>17}"
          "   (x = ratio to torch-eager; cpu: modelway = router+serving)")  # fmt: skip
    for level in levels:
        row = [r for r in results if r.concurrency == level]
        base = next(r for r in row if r.target == "torch-eager")
        for r in row:
            print(
                f"{r.target:<12} {level:>4} {r.throughput:>9.0f} {r.percentile(50):>8.2f} "
                f"{r.percentile(99):>8.2f}   {r.throughput / base.throughput:>8.2f} "
                f"{r.percentile(50) / base.percentile(50):>7.2f} "
                f"{r.percentile(99) / base.percentile(99):>7.2f}   {r.cpu_ms_per_request:>17}"
            )
    print()
    for level in levels:
        row = {r.target: r for r in results if r.concurrency == level}
        share = row["modelway"].throughput / row["serving"].throughput
        print(
            f"concurrency {level:>2}: router path = {share:.2f} x the model server alone "
            f"(goal >= 0.50 at 16); the client's ceiling (trivial server) "
            f"{row['trivial'].throughput:.0f} req/s = "
            f"{row['trivial'].throughput / row['serving'].throughput:.1f} x the model server's"
        )
    from report import Row, write_report

    write_report(
        "bench_local_path",
        [
            Row(r.target, r.concurrency, r.throughput, r.percentile(50), r.percentile(99),
                {"requests": r.requests, "seconds": r.seconds, "server_cpu_s": list(r.cpu_s)})
            for r in results
        ],
        baseline="torch-eager",
        title="digits, local path: torch eager vs modelway's model server vs router → server",
        parameters={"requests": args.requests, "levels": levels, "ort_threads": 1},
        out_dir=args.report_dir,
        off_chart=["trivial"],
    )  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
