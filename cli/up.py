"""``modelway up``: the whole local stack in one command.

Builds and publishes the digits demo model if the registry has no model yet, starts the model
server and the router on loopback as two processes (the same two that run on AWS), watches the
local ``inputs/`` folder for batch files, and prints a ready-to-paste curl. A server that dies
is restarted (``supervise``); Ctrl-C or SIGTERM drains the requests in flight, then stops all.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cli.supervise import Child, CrashLoop, RestartPolicy, Supervisor

if TYPE_CHECKING:
    from functions.core.registry.base import Registry
    from functions.core.settings import Settings

DEMO_MODEL = "digits"
LOCAL_ADMIN_KEY_NAME = "local-admin"
# How long stopping waits for each server to finish the requests it holds: longer than API
# Gateway's 29 s, the longest any request may legitimately take.
DRAIN_SECONDS = 30.0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "up", help="start the local stack (model server + router) with the demo model"
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000, help="router port")
    parser.add_argument("--serving-port", type=int, default=8080, help="model server port")
    parser.add_argument(
        "--no-watch", action="store_true", help="do not score files dropped in inputs/"
    )
    parser.add_argument(
        "--max-restarts",
        type=int,
        default=5,
        help="restarts of a crashed server within --restart-window before giving up (5)",
    )
    parser.add_argument("--restart-window", type=float, default=60.0, help="seconds (60)")
    parser.add_argument(
        "--drain-seconds",
        type=float,
        default=DRAIN_SECONDS,
        help="on Ctrl-C/SIGTERM, how long each server may finish its requests (30)",
    )
    parser.set_defaults(func=run)


@dataclass
class LocalStack:
    """The two processes of the local stack, started and stopped together."""

    router_url: str
    serving_url: str
    serving: Child
    router: Child

    @property
    def processes(self) -> list[subprocess.Popen[bytes]]:
        return [c.proc for c in (self.serving, self.router) if c.proc is not None]

    def stop(self, *, drain_s: float = DRAIN_SECONDS) -> None:
        """The router first: it finishes the requests it accepted, which need the model
        server; then the model server. A second Ctrl-C kills what is left."""
        try:
            self.router.stop(drain_s=drain_s)
            self.serving.stop(drain_s=drain_s)
        finally:
            self.router.kill()
            self.serving.kill()


def ensure_demo_model(*, settings: Settings, registry: Registry) -> None:
    """Build and publish the digits model unless the registry already holds a model."""
    if registry.list_models():
        return
    from cli.actor import current_actor
    from cli.build import default_out_dir
    from cli.output import print_note
    from functions.core.backends import Backends
    from functions.core.publishing import publish_artifact
    from model_build.digits import build_digits
    from model_build.verify import verify_artifact

    print_note("No model published yet: building the digits demo model …")
    result = build_digits(out_dir=default_out_dir(DEMO_MODEL))
    published = publish_artifact(
        path=result.artifact,
        registry=registry,
        store=Backends.from_settings(settings).store,
        settings=settings,
        actor=current_actor(),
        alias="default",
        verify=verify_artifact,
    )
    print_note(
        f"Published {DEMO_MODEL} version {published.version.version} "
        f"(test accuracy {result.test_accuracy:.4f})."
    )


def issue_admin_key(*, registry: Registry) -> str:
    """A fresh secret for the local admin key: rotated on every start, since only its hash
    is stored and the previous secret cannot be shown again."""
    from functions.core import keys

    existing = next(
        (k for k in registry.list_keys() if k.name == LOCAL_ADMIN_KEY_NAME and k.active), None
    )
    if existing is None:
        _, secret = keys.create_key(
            registry=registry, name=LOCAL_ADMIN_KEY_NAME, models=["*"], admin=True
        )
        return secret
    _, secret = keys.rotate_key(registry=registry, key_id=existing.key_id)
    return secret


def start_stack(*, settings: Settings, host: str, port: int, serving_port: int) -> LocalStack:
    """Start the model server and the router as child processes and wait until both answer."""
    serving_url = f"http://{host}:{serving_port}"
    router_url = f"http://{host}:{port}"
    env = {
        **os.environ,
        "MODELWAY_ENV": "local",
        "MODELWAY_HOME": str(settings.home),
        "MODELWAY_SERVING_URL": serving_url,
    }
    serving = Child(
        name="model server",
        argv=[
            sys.executable, "-m", "serving", "local",
            "--artifacts-dir", str(settings.artifacts_dir),
            "--endpoint-prefix", settings.resolved_endpoint_prefix,
            "--host", host, "--port", str(serving_port), "--log-level", "WARNING",
        ],
        env=env,
        ready_url=f"{serving_url}/ping",
    )  # fmt: skip
    router = Child(
        name="router",
        argv=[
            sys.executable, "-m", "uvicorn", "functions.api.app:app_from_environment", "--factory",
            "--host", host, "--port", str(port), "--log-level", "warning",
            "--timeout-graceful-shutdown", str(int(DRAIN_SECONDS)),
        ],
        env=env,
        ready_url=f"{router_url}/v2/health/ready",
    )  # fmt: skip
    stack = LocalStack(
        router_url=router_url, serving_url=serving_url, serving=serving, router=router
    )
    try:
        serving.start()
        router.start()
        serving.wait_ready()
        router.wait_ready()
    except BaseException:
        stack.stop(drain_s=5)
        raise
    return stack


def sample_request() -> tuple[dict[str, object], int]:
    """A real held-out digit (the last of scikit-learn's bundled set) and its label."""
    from model_build.digits import load_sample

    pixels, label = load_sample(index=-1)
    # The digits pixels are whole numbers 0..16: printed as such, the curl stays readable.
    data = [int(p) if float(p).is_integer() else p for p in pixels]
    tensor: dict[str, object] = {
        "name": "input", "datatype": "FP32", "shape": [1, 1, 8, 8], "data": data,
    }  # fmt: skip
    request: dict[str, object] = {"inputs": [tensor]}
    return request, label


def run(args: argparse.Namespace) -> int:
    from functions.core.backends import current

    result_out = sys.stdout
    if getattr(args, "json", False):
        # stdout carries the one JSON line; everything else — the servers' own lines (they
        # inherit descriptor 1), notes, errors — goes to stderr.
        sys.stdout.flush()
        result_out = os.fdopen(os.dup(1), "w")
        os.dup2(2, 1)
    backends = current()
    settings = backends.settings
    settings.home.mkdir(parents=True, exist_ok=True)
    registry = backends.registry
    ensure_demo_model(settings=settings, registry=registry)
    secret = issue_admin_key(registry=registry)

    # From here on SIGTERM stops the servers too (they are in their own process group).
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        stack = start_stack(
            settings=settings, host=args.host, port=args.port, serving_port=args.serving_port
        )
    except KeyboardInterrupt:
        return 130
    stop = threading.Event()
    watcher = None
    if not args.no_watch:
        from functions.batch.watch import watch_inputs

        watcher = threading.Thread(
            target=watch_inputs,
            kwargs={
                # Batch files are scored through the model server this run started.
                "settings": settings.model_copy(update={"serving_url": stack.serving_url}),
                "stop_event": stop,
                "interval": 1.0,
            },
            name="inputs-watcher",
            daemon=True,
        )
        watcher.start()

    request, label = sample_request()
    if getattr(args, "json", False):
        # One line a script can read before the stack runs on (until Ctrl-C / SIGTERM).
        print(json.dumps({
            "home": str(settings.home), "router": stack.router_url,
            "router_pid": stack.router.pid, "model_server": stack.serving_url,
            "model_server_pid": stack.serving.pid, "admin_key": secret,
        }), file=result_out, flush=True)  # fmt: skip
    else:
        print(_banner(stack=stack, secret=secret, request=request, label=label,
                      settings=settings), flush=True)  # fmt: skip

    supervisor = Supervisor(
        children=[stack.serving, stack.router],
        policy=RestartPolicy(max_restarts=args.max_restarts, window_s=args.restart_window),
    )
    try:
        while True:
            supervisor.check()
            time.sleep(0.2)
    except CrashLoop as exc:
        print(f"error: {exc}\nStopping the stack.", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        print(
            f"\nStopping: finishing the requests in flight (at most {args.drain_seconds:.0f} s; "
            "Ctrl-C again to stop at once) …",
            flush=True,
        )
        return 0
    finally:
        stop.set()
        try:
            if watcher is not None:
                # A file being scored finishes first: its job then ends as it would have.
                watcher.join(timeout=args.drain_seconds)
            stack.stop(drain_s=args.drain_seconds)
        except KeyboardInterrupt:
            stack.stop(drain_s=0)


def _interrupt(signum: int, frame: object) -> None:
    """SIGTERM stops the stack the way Ctrl-C does."""
    raise KeyboardInterrupt


def _banner(
    *, stack: LocalStack, secret: str, request: dict[str, object], label: int, settings: Settings
) -> str:
    body = json.dumps(request, separators=(",", ":"))
    router_url = stack.router_url
    return f"""
modelway is up (state in {settings.home})
  router        {router_url} (pid {stack.router.pid})
  model server  {stack.serving_url} (pid {stack.serving.pid}; restarted if it dies)
  admin key     {secret}
  (the key is shown once; it is rotated on every `modelway up`)

Classify a handwritten digit (a held-out {label}):

curl -s {router_url}/v2/models/{DEMO_MODEL}/infer \\
  -H 'x-api-key: {secret}' -H 'content-type: application/json' \\
  -d '{body}'

Drop a .jsonl or .csv file into {settings.data_dir / "inputs" / DEMO_MODEL / "default"}/
to score it; results land in {settings.data_dir / "outputs" / DEMO_MODEL}/.
Ctrl-C stops everything.
"""
