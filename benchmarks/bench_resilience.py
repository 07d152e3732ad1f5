"""Load and fault on the local stack: what clients see at concurrency 32, and while the model
server is killed with SIGKILL in the middle of it.

Starts ``modelway up`` (the real supervisor, router and model server, on loopback) over a fresh
state directory with the digits model, then, for ``--duration`` seconds, ``--concurrency``
clients each send inferences back to back over keep-alive connections: a mix of good requests
(70 %) and bad ones (30 %: a wrong shape → 422, not JSON → 400, no key → 401, an unknown model
→ 404), every one with ``X-Request-Timeout: --request-timeout``.

``--scenario load``   checks: no 5xx, no connection error, every bad request refused with its
                      status; prints request counts by status and latency percentiles.
``--scenario fault``  also drops a batch file into ``inputs/`` (scored by ``up``'s watcher while
                      the load runs) and SIGKILLs the model server at 40 % of the run (the
                      load goes on at least 2 s past the logged restart). Checks:
                      the only 5xx is 503 with ``Retry-After``, no connection error, no request
                      slower than its deadline, the model server back (``up`` restarted it)
                      and answering again within seconds, and the batch job finished with
                      every record either scored or in its error file. Prints the outage
                      figures: kill → restart logged → first good answer again.

Exits 1 if a check fails. Loopback only, bounded in time.

    .venv/bin/python benchmarks/bench_resilience.py --scenario fault --duration 60
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import queue
import random
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from functions.core.registry.base import Job

ROOT = Path(__file__).resolve().parent.parent
GOOD_SHARE = 0.7


@dataclass
class Outcome:
    at: float  # monotonic, when the answer came
    kind: str  # "good", "bad_shape", "bad_json", "no_key", "unknown_model"
    status: int | str  # HTTP status, or the exception's name for a connection error
    seconds: float
    retry_after: str | None = None


@dataclass
class Stack:
    proc: subprocess.Popen[str]
    router_port: int
    key: str
    serving_pid: int
    log: list[tuple[float, str]] = field(default_factory=list)

    def seen(self, pattern: str) -> tuple[float, re.Match[str]] | None:
        for at, line in list(self.log):
            match = re.search(pattern, line)
            if match:
                return at, match
        return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def publish_digits(home: Path, artifact: Path | None) -> tuple[list[float], int]:
    os.environ.update({"MODELWAY_HOME": str(home), "MODELWAY_ENV": "local"})
    from functions.core.backends import make_artifact_store, make_registry
    from functions.core.publishing import publish_artifact
    from functions.core.settings import get_settings
    from model_build.digits import build_digits, load_sample
    from model_build.verify import verify_artifact

    get_settings.cache_clear()
    settings = get_settings()
    if artifact is None:
        artifact = Path(build_digits(out_dir=home / "build").artifact)
    publish_artifact(
        path=artifact,
        registry=make_registry(settings),
        store=make_artifact_store(settings),
        settings=settings,
        actor="bench",
        alias="default",
        verify=verify_artifact,
    )
    pixels, label = load_sample(index=-1)
    return [float(p) for p in pixels], int(label)


def start_up(home: Path, *, batch_records_per_request: int) -> Stack:
    router_port = free_port()
    env = {
        **os.environ,
        "MODELWAY_HOME": str(home),
        "MODELWAY_ENV": "local",
        "PYTHONPATH": str(ROOT),
        # Small micro-batches: the batch job is many requests, so the outage lands mid-job.
        "MODELWAY_BATCH_MAX_RECORDS_PER_REQUEST": str(batch_records_per_request),
    }
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cli",
            "up",
            "--port",
            str(router_port),
            "--serving-port",
            str(free_port()),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=home,
    )
    lines: queue.Queue[tuple[float, str]] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put((time.monotonic(), line))

    threading.Thread(target=pump, daemon=True).start()
    log: list[tuple[float, str]] = []
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            log.append(lines.get(timeout=1))
        except queue.Empty:
            if proc.poll() is not None:
                break
            continue
        if "Ctrl-C stops everything." in log[-1][1]:
            text = "".join(line for _, line in log)
            key = re.search(r"admin key\s+(\S+)", text)
            pid = re.search(r"model server\s+\S+ \(pid (\d+)", text)
            if key is None or pid is None:
                break
            stack = Stack(proc, router_port, key.group(1), int(pid.group(1)), log)
            threading.Thread(target=_keep_pumping, args=(stack, lines), daemon=True).start()
            return stack
    proc.kill()
    raise RuntimeError("modelway up did not start:\n" + "".join(line for _, line in log))


def _keep_pumping(stack: Stack, lines: queue.Queue[tuple[float, str]]) -> None:
    while stack.proc.poll() is None or not lines.empty():
        with contextlib.suppress(queue.Empty):
            stack.log.append(lines.get(timeout=0.5))


def requests_for(pixels: list[float], key: str) -> dict[str, tuple[str, bytes, dict[str, str]]]:
    good = {
        "inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 1, 8, 8], "data": pixels}]
    }
    bad_shape = {
        "inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 64], "data": pixels}]
    }
    auth = {"x-api-key": key, "content-type": "application/json"}
    return {
        "good": ("/v2/models/digits/infer", json.dumps(good).encode(), auth),
        "bad_shape": ("/v2/models/digits/infer", json.dumps(bad_shape).encode(), auth),
        "bad_json": ("/v2/models/digits/infer", b'{"inputs": [', auth),
        "no_key": (
            "/v2/models/digits/infer",
            json.dumps(good).encode(),
            {"content-type": "application/json"},
        ),
        "unknown_model": ("/v2/models/nosuch/infer", json.dumps(good).encode(), auth),
    }


EXPECTED = {"good": 200, "bad_shape": 422, "bad_json": 400, "no_key": 401, "unknown_model": 404}


def client(
    *,
    port: int,
    requests: dict[str, tuple[str, bytes, dict[str, str]]],
    timeout: float,
    until: list[float],
    seed: int,
    out: list[Outcome],
) -> None:
    """Sends until ``until[0]`` (monotonic; the main thread may move it)."""
    rng = random.Random(seed)
    bad_kinds = [k for k in requests if k != "good"]
    conn: http.client.HTTPConnection | None = None
    while time.monotonic() < until[0]:
        kind = "good" if rng.random() < GOOD_SHARE else rng.choice(bad_kinds)
        path, body, headers = requests[kind]
        started = time.monotonic()
        try:
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout + 30)
            conn.request(
                "POST", path, body=body, headers={**headers, "x-request-timeout": str(timeout)}
            )
            response = conn.getresponse()
            response.read()
            out.append(
                Outcome(
                    time.monotonic(),
                    kind,
                    response.status,
                    time.monotonic() - started,
                    response.getheader("retry-after"),
                )
            )
            if response.getheader("connection", "").lower() == "close":
                conn.close()
                conn = None
        except (OSError, http.client.HTTPException) as exc:
            out.append(
                Outcome(time.monotonic(), kind, type(exc).__name__, time.monotonic() - started)
            )
            if conn is not None:
                conn.close()
            conn = None
            time.sleep(0.05)
    if conn is not None:
        conn.close()


def write_batch(home: Path, pixels: list[float], *, records: int) -> tuple[Path, int]:
    """A JSON Lines file of ``records`` digits, every 50th record bad (3 numbers)."""
    lines, bad = [], 0
    for n in range(1, records + 1):
        if n % 50 == 0:
            lines.append("[1, 2, 3]")
            bad += 1
        else:
            lines.append(json.dumps(pixels))
    staging = home / "batch.jsonl"
    staging.write_text("\n".join(lines) + "\n")
    target = home / "data" / "inputs" / "digits" / "default" / "resilience.jsonl"
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(staging, target)  # appears whole: the watcher never sees half a file
    return target, bad


def batch_job(home: Path) -> Job | None:
    from functions.core.backends import make_registry
    from functions.core.settings import get_settings

    jobs = list(make_registry(get_settings()).list_jobs(model="digits"))
    return jobs[0] if jobs else None


def percentiles(values: list[float]) -> str:
    if len(values) < 2:
        return "n/a"
    q = statistics.quantiles(values, n=100, method="inclusive")
    return (
        f"p50 {q[49] * 1000:.1f} ms  p90 {q[89] * 1000:.1f} ms  p99 {q[98] * 1000:.1f} ms  "
        f"max {max(values) * 1000:.1f} ms"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", choices=["load", "fault"], default="fault")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load (60)")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--report-dir", type=Path, help="JSON + PNG (default docs/figures)")
    parser.add_argument(
        "--request-timeout",
        type=float,
        default=5.0,
        help="X-Request-Timeout every request carries (s)",
    )
    parser.add_argument(
        "--batch-records",
        type=int,
        default=None,
        help="records in the fault scenario's batch file (default: 400 per second of load)",
    )
    parser.add_argument(
        "--artifact",
        type=Path,
        default=None,
        help="a built digits model.tar.gz (default: build one)",
    )
    args = parser.parse_args()
    fault = args.scenario == "fault"

    home = Path(tempfile.mkdtemp(prefix="modelway-resilience-"))
    pixels, _ = publish_digits(home, args.artifact)
    stack = start_up(home, batch_records_per_request=16)
    failures: list[str] = []
    batch_bad, batch_records = 0, 0
    job: Job | None = None
    try:
        if fault:
            batch_records = args.batch_records or int(400 * args.duration)
            _, batch_bad = write_batch(home, pixels, records=batch_records)
            # The watcher fires a file once it has held still for a poll: wait for its job.
            wait_until = time.monotonic() + 30
            while batch_job(home) is None and time.monotonic() < wait_until:
                time.sleep(0.1)
        requests = requests_for(pixels, stack.key)
        outcomes: list[Outcome] = []
        started = time.monotonic()
        until = [started + args.duration]
        threads = [
            threading.Thread(
                target=client,
                kwargs={
                    "port": stack.router_port,
                    "requests": requests,
                    "timeout": args.request_timeout,
                    "until": until,
                    "seed": i,
                    "out": outcomes,
                },
            )
            for i in range(args.concurrency)
        ]
        for thread in threads:
            thread.start()
        killed_at = None
        if fault:
            time.sleep(args.duration * 0.4)
            killed_at = time.monotonic()
            os.kill(stack.serving_pid, signal.SIGKILL)
            # The load goes on until the restart is logged (however slow the machine is to
            # restart the server) and two seconds past it, within a bound.
            bound = killed_at + 60
            while time.monotonic() < bound and stack.seen(r"the model server is back") is None:
                until[0] = max(until[0], time.monotonic() + 0.5)
                time.sleep(0.1)
            until[0] = max(until[0], time.monotonic() + 2.0)
        for thread in threads:
            thread.join()
        elapsed = time.monotonic() - started

        if fault:
            wait_until = time.monotonic() + 180
            job = batch_job(home)
            while (job is None or job.status == "running") and time.monotonic() < wait_until:
                time.sleep(0.5)
                job = batch_job(home)
    finally:
        stack.proc.send_signal(signal.SIGINT)
        try:
            code = stack.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            stack.proc.kill()
            code = -9
    if code != 0:
        failures.append(f"modelway up exited with {code} on Ctrl-C")

    # -- figures -------------------------------------------------------------------------
    by_status = Counter(o.status for o in outcomes)
    conn_errors = sum(n for s, n in by_status.items() if isinstance(s, str))
    print(
        f"\n{args.scenario}: {len(outcomes)} requests in {elapsed:.1f} s "
        f"({len(outcomes) / elapsed:.0f}/s), concurrency {args.concurrency}, "
        f"{GOOD_SHARE:.0%} good, X-Request-Timeout {args.request_timeout:g} s"
    )
    print("by status:   " + ", ".join(f"{s}: {n}" for s, n in sorted(by_status.items(), key=str)))
    print(f"connection errors: {conn_errors}")
    good_ok = [o.seconds for o in outcomes if o.kind == "good" and o.status == 200]
    print(f"latency, good requests answered 200 ({len(good_ok)}): {percentiles(good_ok)}")
    print(f"latency, all requests: {percentiles([o.seconds for o in outcomes])}")
    from report import Row, write_report

    def row(target: str, seconds: list[float]) -> Row:
        ms = statistics.quantiles([1e3 * x for x in seconds], n=100, method="inclusive")
        extra = {"requests": len(seconds), "seconds": elapsed}
        return Row(target, args.concurrency, len(seconds) / elapsed, ms[49], ms[98], extra)

    write_report(
        f"bench_resilience_{args.scenario}",
        [row("good, 200", good_ok), row("all", [o.seconds for o in outcomes])],
        baseline=None,
        title=f"modelway up, {args.scenario} scenario: {elapsed:.0f} s at concurrency "
        f"{args.concurrency}"
        + (" (model server SIGKILLed at 40 %)" if args.scenario == "fault" else ""),
        parameters={"by_status": {str(k): v for k, v in by_status.items()}, **vars(args)},
        out_dir=args.report_dir,
    )

    if conn_errors:
        failures.append(f"{conn_errors} connection errors")
    slow = [o for o in outcomes if o.seconds > args.request_timeout + 1.0]
    if slow:
        failures.append(f"{len(slow)} requests took longer than their deadline + 1 s")
    for o in outcomes:
        if (
            isinstance(o.status, int)
            and o.status >= 500
            and not (fault and o.status == 503 and o.retry_after)
        ):
            failures.append(f"a {o.kind} request answered {o.status}")
            break
    wrong = Counter(
        (o.kind, o.status)
        for o in outcomes
        if isinstance(o.status, int) and o.status != EXPECTED[o.kind] and o.status != 503
    )
    if wrong:
        failures.append(f"answers with an unexpected status: {dict(wrong)}")

    if fault and killed_at is not None:
        after = [o for o in outcomes if o.at >= killed_at and o.kind == "good"]
        unavailable = [o for o in after if o.status == 503]
        first_503 = min((o.at for o in unavailable), default=None)
        back = stack.seen(r"the model server is back")
        restarted = stack.seen(r"model server \(pid \d+\) exited \((.*?)\); restarting")
        first_ok = min(
            (o.at for o in after if o.status == 200 and (first_503 is None or o.at > first_503)),
            default=None,
        )
        last_503 = max((o.at for o in unavailable), default=None)
        print(
            f"\nfault: model server (pid {stack.serving_pid}) SIGKILLed at "
            f"{killed_at - started:.1f} s into the load"
        )
        if restarted:
            print(
                f"  supervisor saw it exit ({restarted[1].group(1)}) "
                f"after {restarted[0] - killed_at:.2f} s"
            )
        if back:
            print(f"  model server back (restart logged) after {back[0] - killed_at:.2f} s")
        else:
            failures.append("the model server was never restarted")
        print(
            f"  good requests answered 503 while it was down: {len(unavailable)} "
            f"(all with Retry-After: {all(o.retry_after for o in unavailable)})"
        )
        if first_503 is not None and last_503 is not None:
            print(
                f"  503s from {first_503 - killed_at:.2f} s to {last_503 - killed_at:.2f} s "
                "after the kill"
            )
        if first_ok is not None:
            print(
                f"  first good answer again {first_ok - killed_at:.2f} s after the kill"
                + (f" ({first_ok - back[0]:.2f} s after the restart)" if back else "")
            )
        else:
            failures.append("no good answer after the kill")
        if back and first_ok is not None and first_ok - back[0] > 5:
            failures.append("service not back within 5 s of the restart")
        if not unavailable:
            print("  (no request hit the outage window)")
        if job is None:
            failures.append("the batch job never started")
        else:
            j = job
            print(
                f"\nbatch job {j.job_id}: {j.status}, records {j.records} "
                f"(ok {j.ok}, in the error file {j.errors}; {batch_bad} bad in the file), "
                f"requests {j.extra.get('requests')}, retries {j.extra.get('retries')}, "
                f"{j.extra.get('duration_seconds')} s"
            )
            if j.status == "failed":
                print(f"  reason: {j.reason}")
            scored = errored = 0
            for uri, counter in ((j.output_uri, "ok"), (j.errors_uri, "err")):
                if uri:
                    path = Path(uri.removeprefix("file://").replace("%20", " "))
                    n = sum(1 for _ in path.open())
                    scored, errored = (n, errored) if counter == "ok" else (scored, n)
            print(f"  result file lines {scored}, error file lines {errored}")
            if (j.status, j.records, scored, errored) != (
                "partial",
                batch_records,
                batch_records - batch_bad,
                batch_bad,
            ):
                failures.append("the batch job did not account for every record")

    print()
    for failure in failures:
        print(f"FAIL: {failure}")
    print("OK" if not failures else f"{len(failures)} check(s) failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
