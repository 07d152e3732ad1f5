"""``python -m serving serve|local``.

serve   the SageMaker hosting contract (what the container runs: ``docker run IMAGE serve``):
        one model from ``--model-dir`` (default /opt/ml/model), port ``--port``, else
        ``SAGEMAKER_BIND_TO_PORT``, else 8080.
local   every version under ``--artifacts-dir`` behind the SageMaker runtime path, for the
        laptop stack; ``--port 0`` picks a free port.

Either way, once the socket is bound one line ``modelway-serving listening on http://H:P``
is printed to stdout, so a parent process can read the port.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import socket
import sys
from collections.abc import Sequence

import uvicorn

from serving.app import create_hosting_app, create_local_app
from serving.config import ServingConfig

LISTENING = "modelway-serving listening on"
# Longer than the idle timeout of whatever pools connections in front of us (SageMaker's
# front end, boto3's pool): a server closing first races the client's next request.
KEEP_ALIVE_S = 75


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m serving", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="SageMaker hosting contract: /ping, /invocations")
    serve.add_argument("--model-dir", default="/opt/ml/model")
    serve.add_argument("--host", default="0.0.0.0")  # inside the container: reachable by SageMaker
    serve.add_argument("--port", type=int, default=None)

    local = commands.add_parser("local", help="every local version behind the runtime path")
    local.add_argument("--artifacts-dir", required=True)
    local.add_argument("--endpoint-prefix", required=True)
    local.add_argument("--host", default="127.0.0.1")
    local.add_argument("--port", type=int, default=8080)

    for sub in (serve, local):
        sub.add_argument("--log-level", default=os.environ.get("MODELWAY_LOG_LEVEL", "INFO"))
        sub.add_argument(
            "--access-log", action="store_true", help="log every request (off: it costs latency)"
        )
    return parser


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio enables TCP_NODELAY on accepted connections only when
    # the listening socket says TCP; without it Nagle + delayed ACK add ~40 ms per response.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    level = str(args.log_level).upper()
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = ServingConfig.from_env()
    if args.command == "serve":
        app = create_hosting_app(model_dir=args.model_dir, config=config)
        port = (
            args.port
            if args.port is not None
            else int(os.environ.get("SAGEMAKER_BIND_TO_PORT", "8080"))
        )
    else:
        app = create_local_app(
            artifacts_dir=args.artifacts_dir, endpoint_prefix=args.endpoint_prefix, config=config
        )
        port = args.port
    sock = _bind(args.host, port)
    bound_port = sock.getsockname()[1]
    print(f"{LISTENING} http://{args.host}:{bound_port}", flush=True)
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            log_level=level.lower(),
            access_log=args.access_log,
            timeout_keep_alive=KEEP_ALIVE_S,
            lifespan="on",
        )
    )
    # uvicorn shuts down gracefully, then re-raises the Ctrl-C it caught: not an error.
    with contextlib.suppress(KeyboardInterrupt):
        server.run(sockets=[sock])
    # A failed startup (say, a model that cannot load) exits with status 3 in recent uvicorn;
    # older releases return instead.
    return 0 if server.started else 3


if __name__ == "__main__":
    sys.exit(main())
