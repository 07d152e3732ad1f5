"""The router's and the authorizer's cold start and per-event cost, against baselines run
beside them.

    .venv/bin/python benchmarks/bench_router.py [--runs 7] [--events 3000]

Cold, as a Lambda sandbox starts without SnapStart (``AWS_LAMBDA_FUNCTION_NAME`` is set, so
importing a handler is the init phase): a fresh Python process imports the handler and answers
one real-shaped event over the local backend — the router ``events/api-infer.json`` (the
digits model, SQLite registry, modelway's model server on loopback), the authorizer
``events/authorizer-request.json``. Each is timed from spawn to its first response and set
against a fresh process that only imports that function's own dependencies, spawned the same
way in the same run (median of ``--runs`` interleaved pairs). Inside the router's process, the
first event after import is set against the median of the warm events that follow it.

Warm, in process: the router's Lambda handler (Powertools logs and metrics included) with the
runtime call replaced by one returning a prepared answer (the model server's own answer to the
digit): our own work per inference event, as CPU time of the handling thread (what the event
costs; on this shared 2-core machine wall time also counts waiting for a core) and wall time.
The authorizer's handler likewise.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from bench_local_path import free_port, publish_digits, start_serving

# The sample events are found the one way tests find them (tests/events.py: stdlib only, and it
# refuses a name that is not there); the repository root is not on the path of a script run
# as ``python benchmarks/bench_router.py``.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.events import sample_path

ROUTER_DEPENDENCIES = """
import boto3, fastapi, mangum, pydantic_settings
from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
"""
AUTHORIZER_DEPENDENCIES = """
import pydantic_settings
from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.data_classes import api_gateway_authorizer_event
"""
# Each child writes, to the file named by argv[1], the wall clock of its first response and
# (when it has events) how long its import, first event and warm events took.
_BASELINE = """
import json, sys, time
{imports}
json.dump({{"answered_at": time.time()}}, open(sys.argv[1], "w"))
"""
_FUNCTION = """
import json, sys, time
started = time.perf_counter()
from functions.{package} import handler as module
imported = time.perf_counter()

class Context:
    function_name = "modelway-bench"
    function_version = "1"
    memory_limit_in_mb = 1024
    aws_request_id = "bench"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:modelway-bench"
    log_group_name = log_stream_name = "bench"
    def get_remaining_time_in_millis(self):
        return 30000

event = json.load(open(sys.argv[2]))
stamp = event["requestContext"]  # received now, as API Gateway would say
stamp["requestTimeEpoch"] = int(time.time() * 1000)
answer = module.handler(event, Context())
answered = time.perf_counter()
answered_at = time.time()
assert {check}, answer
warm = []
for _ in range(int(sys.argv[3])):
    stamp["requestTimeEpoch"] = int(time.time() * 1000)
    t = time.perf_counter()
    module.handler(event, Context())
    warm.append(time.perf_counter() - t)
json.dump({{"answered_at": answered_at, "import_s": imported - started,
           "first_s": answered - imported, "warm_s": warm}}, open(sys.argv[1], "w"))
"""


def spawn(code: str, *, event: Path | None = None, warm_events: int = 0) -> dict[str, Any]:
    """Run ``code`` in a fresh interpreter; its result, with ``first_response_s`` measured
    from the moment it was spawned."""
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        argv = [sys.executable, "-c", code, out.name]
        if event is not None:
            argv += [str(event), str(warm_events)]
        spawned_at = time.time()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, env=os.environ)
        result: dict[str, Any] = json.loads(Path(out.name).read_text())
    result["first_response_s"] = result["answered_at"] - spawned_at
    return result


def cold(
    name: str, *, baseline: str, function: str, event: Path, runs: int, warm_events: int
) -> dict[str, Any]:
    """``runs`` interleaved (baseline, function) pairs after one unmeasured pair (.pyc)."""
    spawn(baseline)
    spawn(function, event=event, warm_events=warm_events)
    base, func = [], []
    for _ in range(runs):
        base.append(spawn(baseline))
        func.append(spawn(function, event=event, warm_events=warm_events))
    b = statistics.median(r["first_response_s"] for r in base)
    f = statistics.median(r["first_response_s"] for r in func)
    first = statistics.median(r["first_s"] for r in func)
    warm = statistics.median(s for r in func for s in r["warm_s"])
    imported = statistics.median(r["import_s"] for r in func)
    print(
        f"{name:<11} first response {f * 1e3:7.1f} ms   its dependencies alone {b * 1e3:7.1f} ms"
        f"   ratio {f / b:5.2f}   (import+init {imported * 1e3:.1f} ms)"
    )
    print(
        f"{'':<11} first event after import {first * 1e3:.3f} ms   warm event (median) "
        f"{warm * 1e3:.3f} ms   ratio {first / warm:5.2f}"
    )
    return {"ratio": f / b, "first_over_warm": first / warm}


@contextlib.contextmanager
def stdout_to_devnull() -> Iterator[None]:
    """Powertools writes its log lines and metrics to fd 1: sent where Lambda's would go."""
    sys.stdout.flush()
    saved = os.dup(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(devnull)
        os.close(saved)


def per_event(call: Callable[[], object], *, events: int) -> tuple[list[float], list[float]]:
    """CPU and wall milliseconds of each of ``events`` calls (after 200 unmeasured ones)."""
    for _ in range(200):
        call()
    cpu, wall = [], []
    for _ in range(events):
        c, w = time.thread_time(), time.perf_counter()
        call()
        cpu.append((time.thread_time() - c) * 1e3)
        wall.append((time.perf_counter() - w) * 1e3)
    return cpu, wall


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def report_warm(name: str, cpu: list[float], wall: list[float], goal: str) -> None:
    print(
        f"{name:<11} cpu p50 {pct(cpu, 50):.3f} ms  p99 {pct(cpu, 99):.3f} ms   "
        f"wall p50 {pct(wall, 50):.3f} ms  p99 {pct(wall, 99):.3f} ms   {goal}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="cold process pairs per function")
    parser.add_argument("--events", type=int, default=3000, help="warm events measured")
    args = parser.parse_args()

    model = publish_digits(Path(tempfile.mkdtemp(prefix="modelway-bench-")))
    serving_port = free_port()
    os.environ["MODELWAY_ORT_THREADS"] = "1"
    os.environ["MODELWAY_SERVING_URL"] = f"http://127.0.0.1:{serving_port}"
    serving = start_serving(model, port=serving_port)
    from cli.invoke import LocalLambdaContext, load_event

    work = Path(tempfile.mkdtemp(prefix="modelway-bench-events-"))
    events = {}
    for name in ("api-infer", "authorizer-request"):
        events[name] = work / f"{name}.json"
        events[name].write_text(
            json.dumps(load_event(sample_path(f"{name}.json"), api_key=model.secret))
        )
    try:
        print(f"\ncold: median of {args.runs} fresh processes each, local backend")
        env_before = dict(os.environ)
        os.environ["AWS_LAMBDA_FUNCTION_NAME"] = "modelway-bench"
        router = cold(
            "router",
            baseline=_BASELINE.format(imports=ROUTER_DEPENDENCIES),
            function=_FUNCTION.format(package="api", check="answer['statusCode'] == 200"),
            event=events["api-infer"],
            runs=args.runs,
            warm_events=200,
        )
        authorizer = cold(
            "authorizer",
            baseline=_BASELINE.format(imports=AUTHORIZER_DEPENDENCIES),
            function=_FUNCTION.format(
                package="authorizer", check="answer['policyDocument']['Statement']"
            ),
            event=events["authorizer-request"],
            runs=args.runs,
            warm_events=200,
        )
        os.environ.clear()
        os.environ.update(env_before)

        print(f"\nwarm, in process: {args.events} events each")
        from functions.api import handler as api_handler
        from functions.api.app import create_app
        from functions.authorizer import handler as authorizer_handler
        from functions.core.backends import Backends, use
        from functions.core.runtime.base import RuntimeResponse
        from functions.core.settings import get_settings

        get_settings.cache_clear()  # MODELWAY_SERVING_URL is set now
        settings = get_settings()
        app = create_app(settings=settings)
        state = app.state.modelway
        # The model server's own answer to this digit, returned without a network hop.
        real = state.runtime.invoke(
            endpoint=model.endpoint, variant="v1", body=model.body, content_type="application/json"
        )
        prepared = RuntimeResponse(body=real.body, content_type=real.content_type, variant="v1")

        class Prepared:
            def invoke(self, **_: Any) -> RuntimeResponse:
                return prepared

        state.runtime = Prepared()
        adapter = api_handler.build_adapter(app)
        api_handler._adapter = adapter
        api_event = json.loads(events["api-infer"].read_text())
        context = LocalLambdaContext()
        stamp = api_event["requestContext"]

        def handle() -> object:
            stamp["requestTimeEpoch"] = int(time.time() * 1000)  # received now
            return api_handler.handler(api_event, context)

        response = handle()
        assert response["statusCode"] == 200, response
        assert json.loads(response["body"]) == json.loads(real.body)
        with stdout_to_devnull():
            cpu, wall = per_event(handle, events=args.events)
        report_warm("router", cpu, wall, "(goal: p50 <= 0.5 ms, p99 <= 2 ms)")
        router_cpu = (pct(cpu, 50), pct(cpu, 99))

        use(Backends.from_settings(settings))  # the authorizer's keys, from these settings
        auth_event = json.loads(events["authorizer-request"].read_text())
        with stdout_to_devnull():
            cpu, wall = per_event(
                lambda: authorizer_handler.handler(auth_event, context), events=args.events
            )
        report_warm("authorizer", cpu, wall, "(a registry read per event: API Gateway caches)")
    finally:
        serving.terminate()
        serving.wait()

    print(
        "\ngoals: router cold ratio {:.2f} (<= 1.15), first/warm {:.2f} (<= 2); "
        "router cpu p50 {:.3f} ms (<= 0.5), p99 {:.3f} ms (<= 2); "
        "authorizer cold ratio {:.2f}, first/warm {:.2f}".format(
            router["ratio"],
            router["first_over_warm"],
            *router_cpu,
            authorizer["ratio"],
            authorizer["first_over_warm"],
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
