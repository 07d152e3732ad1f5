"""The baseline: the same digits model in plain torch eager mode behind a minimal HTTP server.

It answers ``POST /v2/models/digits/infer`` with the Open Inference Protocol JSON the modelway
path answers, so the load generator sends identical requests to both. Run by
``bench_local_path.py`` as a separate process, like the modelway servers.
"""

from __future__ import annotations

import argparse
import json
import socket
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import torch


def load_model() -> torch.nn.Module:
    """Train the digits model exactly as the build does (seeded, deterministic)."""
    from model_build.determinism import deterministic
    from model_build.digits.data import load_split
    from model_build.digits.train import SEED, train

    split = load_split()
    with deterministic(seed=SEED):
        model = train(images=split.train_images, labels=split.train_labels)
    return model.eval()


def make_handler(model: torch.nn.Module) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            super().setup()
            # Headers and body go out in two writes; with Nagle on, the second waits ~40 ms.
            self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            self._reply(200, {"live": True})

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            tensor = body["inputs"][0]
            pixels = torch.tensor(tensor["data"], dtype=torch.float32).reshape(tensor["shape"])
            with torch.inference_mode():
                logits, label = model(pixels)
            self._reply(
                200,
                {
                    "model_name": "digits",
                    "outputs": [
                        {"name": "logits", "datatype": "FP32", "shape": list(logits.shape),
                         "data": logits.flatten().tolist()},
                        {"name": "label", "datatype": "INT64", "shape": list(label.shape),
                         "data": label.tolist()},
                    ],
                },
            )  # fmt: skip

        def _reply(self, status: int, payload: dict[str, object]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    # socketserver's default backlog (5) drops or resets some of 16 simultaneous connects.
    ThreadingHTTPServer.request_queue_size = 64
    server = ThreadingHTTPServer(("127.0.0.1", args.port), make_handler(load_model()))
    server.serve_forever()


if __name__ == "__main__":
    main()
