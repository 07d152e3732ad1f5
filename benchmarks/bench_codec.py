"""What the shared codec costs on top of the JSON parse every request pays anyway, and what a
hostile body costs it: each case is timed beside ``json.loads`` of the same bytes (the
baseline, measured in the same run) and printed as a ratio.

Cases: a digits batch of 256 (JSON, nested), the same batch flat, 1M FP32 values in the
binary extension (the baseline there is ``bytes`` slicing plus ``json.loads`` of the header),
256 short texts (BYTES), and a 5,000-deep nested body (refused; its baseline, ``json.loads``,
raises RecursionError).

    .venv/bin/python benchmarks/bench_codec.py [--repeat 20]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import struct
import time
from collections.abc import Callable
from typing import Any

from functions.core import oip


def _best(fn: Callable[[], Any], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        with contextlib.suppress(oip.ProtocolError, RecursionError):
            fn()
        best = min(best, time.perf_counter() - start)
    return best


def _signature(datatype: str, shape: list[int]) -> oip.Signature:
    return oip.Signature.from_dict(
        {
            "inputs": [{"name": "x", "datatype": datatype, "shape": shape}],
            "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1]}],
        }
    )


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()

    image = [[[float((r * 8 + c) % 17) / 16 for c in range(8)] for r in range(8)]]
    digits = _signature("FP32", [-1, 1, 8, 8])
    nested = json.dumps({"inputs": [{"name": "x", "datatype": "FP32", "shape": [256, 1, 8, 8],
                                     "data": [image] * 256}]}).encode()  # fmt: skip
    flat_values = [v for row in image[0] for v in row] * 256
    flat = json.dumps({"inputs": [{"name": "x", "datatype": "FP32", "shape": [256, 1, 8, 8],
                                   "data": flat_values}]}).encode()  # fmt: skip
    count = 1_000_000
    header = json.dumps({"inputs": [{"name": "x", "datatype": "FP32", "shape": [count],
                         "parameters": {"binary_data_size": 4 * count}}]}).encode()  # fmt: skip
    binary = header + struct.pack(f"<{count}f", *(float(i % 1000) for i in range(count)))
    texts = json.dumps({"inputs": [{"name": "x", "datatype": "BYTES", "shape": [256],
                                    "data": ["a short review, été"] * 256}]}).encode()  # fmt: skip
    deep = b'{"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":'
    deep += b"[" * 5000 + b"]" * 5000 + b"}]}"

    cases = [
        ("digits x256, nested JSON", nested, None, digits, lambda: json.loads(nested)),
        ("digits x256, flat JSON", flat, None, digits, lambda: json.loads(flat)),
        ("1M FP32, binary", binary, len(header), _signature("FP32", [-1]),
         lambda: (json.loads(binary[: len(header)]), binary[len(header) :])),
        ("256 texts, BYTES", texts, None, _signature("BYTES", [-1]), lambda: json.loads(texts)),
        ("5000-deep (refused)", deep, None, digits, lambda: json.loads(deep)),
    ]  # fmt: skip
    print(f"{'case':28} {'bytes':>9} {'baseline ms':>12} {'codec ms':>10} {'ratio':>7}")
    for name, body, length, signature, baseline in cases:
        base = _best(baseline, args.repeat)
        codec = _best(
            lambda b=body, n=length, s=signature: oip.decode_request(b, json_length=n, signature=s),
            args.repeat,
        )
        print(f"{name:28} {len(body):>9} {base * 1e3:>12.3f} {codec * 1e3:>10.3f} "
              f"{codec / base:>7.2f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
