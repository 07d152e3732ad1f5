"""One case table, run against every caller of the shared Open Inference Protocol codec: the
router (the real app, over HTTP), batch scoring (a JSON Lines record) and the model server (the
real hosting app, running real ONNX graphs that echo their inputs, BYTES included). Each case
names the one answer all three must give, so they provably agree on what a valid request is.

Accepted requests go all the way: the router forwards them to the model server (in process),
whose answer must echo every input, value for value.
"""

from __future__ import annotations

import hashlib
import json
import math
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx
import pytest
from fastapi.testclient import TestClient
from onnx import TensorProto, helper
from starlette.testclient import TestClient as StarletteClient

from functions.batch.jsonl_records import JsonLinesParser
from functions.core import oip
from functions.core.exceptions import ModelwayError
from functions.core.manifest import Signature
from functions.core.registry.sqlite import SqliteRegistry
from functions.core.runtime.base import RuntimeResponse
from serving.app import create_hosting_app
from serving.config import ServingConfig
from tests.api.api_testkit import add_version, make_key
from tests.runtime_testkit import FakeRuntime

MIXED = {
    "inputs": [
        {"name": "text", "datatype": "BYTES", "shape": [-1], "max_bytes": 16},
        {
            "name": "ids",
            "datatype": "INT64",
            "shape": [-1, -1],
            "max_shape": [-1, 8],
            "dim_names": ["batch", "sequence"],
        },
        {"name": "mask", "datatype": "INT64", "shape": [-1, -1], "dim_names": [None, "sequence"]},
        {"name": "x", "datatype": "FP32", "shape": [-1, 2]},
        {"name": "flag", "datatype": "BOOL", "shape": [-1]},
        {"name": "h", "datatype": "FP16", "shape": [-1]},
    ]
}
NUMBERS = {
    "inputs": [
        {"name": "a", "datatype": "INT8", "shape": [-1, 2]},
        {"name": "b", "datatype": "UINT8", "shape": [-1, 2]},
        {"name": "c", "datatype": "INT16", "shape": [-1, 2]},
        {"name": "d", "datatype": "INT32", "shape": [-1, 2]},
        {"name": "e", "datatype": "FP64", "shape": [-1, 2]},
    ]
}
_ONNX_TYPES = {
    "BYTES": TensorProto.STRING,
    "INT64": TensorProto.INT64,
    "FP32": TensorProto.FLOAT,
    "BOOL": TensorProto.BOOL,
    "FP16": TensorProto.FLOAT16,
    "INT8": TensorProto.INT8,
    "UINT8": TensorProto.UINT8,
    "INT16": TensorProto.INT16,
    "INT32": TensorProto.INT32,
    "FP64": TensorProto.DOUBLE,
}


def _signature(inputs: dict[str, Any]) -> dict[str, Any]:
    outputs = [
        {"name": f"{t['name']}_out", "datatype": t["datatype"], "shape": t["shape"]}
        for t in inputs["inputs"]
    ]
    return {"inputs": inputs["inputs"], "outputs": outputs}


SIGNATURES = {"mixed": _signature(MIXED), "numbers": _signature(NUMBERS)}


def _echo_onnx(signature: dict[str, Any]) -> bytes:
    """Each input copied to ``<name>_out`` by an Identity node: a real graph, any datatype."""

    def value(spec: dict[str, Any], name: str) -> onnx.ValueInfoProto:
        dims = [
            "N" if axis == 0 else (d if d > 0 else f"D{axis}")
            for axis, d in enumerate(spec["shape"])
        ]
        return helper.make_tensor_value_info(name, _ONNX_TYPES[spec["datatype"]], dims)

    specs = signature["inputs"]
    graph = helper.make_graph(
        [helper.make_node("Identity", [s["name"]], [f"{s['name']}_out"]) for s in specs],
        "echo",
        [value(s, s["name"]) for s in specs],
        [value(s, f"{s['name']}_out") for s in specs],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    onnx.checker.check_model(model)
    return model.SerializeToString()


# -- requests -----------------------------------------------------------------------------


def _good(model: str) -> dict[str, Any]:
    if model == "mixed":
        return {
            "id": "r-1",
            "inputs": [
                {"name": "text", "datatype": "BYTES", "shape": [1], "data": ["héllo wörld"]},
                {"name": "ids", "datatype": "INT64", "shape": [1, 3], "data": [[101, 7, 102]]},
                {"name": "mask", "datatype": "INT64", "shape": [1, 3], "data": [[1, 1, 0]]},
                {"name": "x", "datatype": "FP32", "shape": [1, 2], "data": [[0.5, -1.25]]},
                {"name": "flag", "datatype": "BOOL", "shape": [1], "data": [True]},
                {"name": "h", "datatype": "FP16", "shape": [1], "data": [1.5]},
            ],
        }
    return {
        "inputs": [
            {"name": "a", "datatype": "INT8", "shape": [1, 2], "data": [[-128, 127]]},
            {"name": "b", "datatype": "UINT8", "shape": [1, 2], "data": [[0, 255]]},
            {"name": "c", "datatype": "INT16", "shape": [1, 2], "data": [[-32768, 32767]]},
            {"name": "d", "datatype": "INT32", "shape": [1, 2], "data": [[-(2**31), 2**31 - 1]]},
            {"name": "e", "datatype": "FP64", "shape": [1, 2], "data": [[1e300, -2.5]]},
        ]
    }


def _with(model: str, target: str, /, **changes: Any) -> dict[str, Any]:
    document = _good(model)
    for tensor in document["inputs"]:
        if tensor["name"] == target:
            tensor.update(changes)
    return document


def _without(model: str, name: str) -> dict[str, Any]:
    document = _good(model)
    document["inputs"] = [t for t in document["inputs"] if t["name"] != name]
    return document


_BYTES_LENGTH = struct.Struct("<I")
_CODES = {
    "BOOL": "?",
    "INT64": "q",
    "FP32": "f",
    "FP16": "e",
    "INT8": "b",
    "UINT8": "B",
    "INT16": "h",
    "INT32": "i",
    "FP64": "d",
}


def _pack(tensor: dict[str, Any]) -> bytes:
    flat = list(np.ravel(np.array(tensor["data"], dtype=object)))
    if tensor["datatype"] == "BYTES":
        return b"".join(_BYTES_LENGTH.pack(len(s.encode())) + s.encode() for s in flat)
    return struct.pack(f"<{len(flat)}{_CODES[tensor['datatype']]}", *flat)


def _binary(
    model: str, *, chunk: Callable[[str, bytes], bytes] | None = None, **sizes: int
) -> tuple[bytes, str]:
    """The good request with every input in the binary extension; ``chunk`` may corrupt one
    input's bytes, ``sizes`` override declared ``binary_data_size``s."""
    document = _good(model)
    chunks = []
    for tensor in document["inputs"]:
        data = _pack(tensor)
        if chunk is not None:
            data = chunk(tensor["name"], data)
        del tensor["data"]
        size = sizes.get(tensor["name"], len(data))
        tensor["parameters"] = {"binary_data_size": size}
        chunks.append(data)
    header = json.dumps(document).encode()
    return header + b"".join(chunks), str(len(header))


def _replace(target: str, new: bytes) -> Callable[[str, bytes], bytes]:
    return lambda name, data: new if name == target else data


# -- the table ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    id: str
    model: str
    body: bytes
    # None: a plain JSON body. A string: the Inference-Header-Content-Length header.
    header_length: str | None = None
    # None: accepted. Else (status, code, a fragment of the error message).
    refused: tuple[int, str, str] | None = None
    # Batch reads JSON Lines only; a few JSON bodies mean something else there (see below).
    batch: bool = True
    # Sent instead of application/json (SageMaker's binary form names the JSON length here).
    content_type: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _json(
    case_id: str,
    model: str,
    document: Any,
    refused: tuple[int, str, str] | None = None,
    *,
    batch: bool = True,
) -> Case:
    body = document if isinstance(document, bytes) else json.dumps(document).encode()
    return Case(id=case_id, model=model, body=body, refused=refused, batch=batch)


def _bin(
    case_id: str, model: str, framed: tuple[bytes, str], refused: tuple[int, str, str] | None = None
) -> Case:
    body, length = framed
    return Case(
        id=case_id, model=model, body=body, header_length=length, refused=refused, batch=False
    )


BAD_REQUEST = (400, "invalid_request")
BAD_TENSOR = (422, "invalid_tensor")
TOO_LARGE = (413, "payload_too_large")
DEEP = (
    b'{"inputs":[{"name":"a","datatype":"INT8","shape":[1],"data":'
    + b"[" * 5000
    + b"]" * 5000
    + b"}]}"
)
TEXT_17 = "x" * 15 + "é"  # 16 characters, 17 UTF-8 bytes

CASES = [
    # accepted
    _json("mixed, every datatype", "mixed", _good("mixed")),
    _json("numbers at their extremes", "numbers", _good("numbers")),
    _json("flat data", "mixed", _with("mixed", "ids", data=[101, 7, 102])),
    _json(
        "sequence at its bound",
        "mixed",
        {
            "inputs": [
                {**t, "shape": [1, 8], "data": [[1] * 8]} if t["name"] in ("ids", "mask") else t
                for t in _good("mixed")["inputs"]
            ]
        },
    ),
    _json("empty text", "mixed", _with("mixed", "text", data=[""])),
    _json("16-byte text", "mixed", _with("mixed", "text", data=["x" * 14 + "é"])),
    _bin("binary, every datatype", "mixed", _binary("mixed")),
    _bin("binary numbers", "numbers", _binary("numbers")),
    Case(
        id="binary, length in SageMaker's content type",
        model="mixed",
        body=_binary("mixed")[0],
        content_type=f"{oip.BINARY_CONTENT_TYPE};json-header-size={_binary('mixed')[1]}",
        batch=False,
    ),
    # not a request (400)
    _json("not JSON", "mixed", b"{inputs", (*BAD_REQUEST, "not valid JSON")),
    _json("5000-deep nesting", "numbers", DEEP, (*BAD_REQUEST, "nests JSON more than 64 levels")),
    _json(
        "NaN literal",
        "numbers",
        json.dumps(_with("numbers", "e", data=[math.nan, 1.0])).encode(),
        (*BAD_REQUEST, "not valid JSON"),
    ),
    _json("not UTF-8", "mixed", b'{"inputs": "\xff"}', (*BAD_REQUEST, "not UTF-8")),
    _json("a JSON array", "mixed", [1, 2], (*BAD_REQUEST, "must be a JSON object"), batch=False),
    _json(
        "id not a string",
        "mixed",
        {**_good("mixed"), "id": 7},
        (*BAD_REQUEST, "'id' must be a string"),
    ),
    # tensors that do not fit (422)
    _json("no inputs", "mixed", {"inputs": []}, (*BAD_TENSOR, "non-empty 'inputs'")),
    _json(
        "missing input",
        "mixed",
        _without("mixed", "flag"),
        (*BAD_TENSOR, "missing required input 'flag'"),
    ),
    _json(
        "unknown input",
        "mixed",
        _with("mixed", "flag", name="pixels"),
        (*BAD_TENSOR, "unknown input 'pixels'"),
    ),
    _json(
        "input twice",
        "numbers",
        {"inputs": _good("numbers")["inputs"] * 2},
        (*BAD_TENSOR, "appears more than once"),
    ),
    _json(
        "wrong datatype",
        "mixed",
        _with("mixed", "ids", datatype="INT32"),
        (*BAD_TENSOR, "datatype must be INT64"),
    ),
    _json(
        "sequence lengths differ",
        "mixed",
        _with("mixed", "mask", shape=[1, 2], data=[[1, 1]]),
        (*BAD_TENSOR, "input 'mask' axis 1 ('sequence') is 2, but input 'ids' axis 1 is 3"),
    ),
    _json(
        "sequence past its bound",
        "mixed",
        {
            "inputs": [
                {**t, "shape": [1, 9], "data": [[1] * 9]} if t["name"] in ("ids", "mask") else t
                for t in _good("mixed")["inputs"]
            ]
        },
        (*BAD_TENSOR, "axis 1 is 9, outside the model's bounds (1..8)"),
    ),
    _json(
        "wrong rank",
        "mixed",
        _with("mixed", "ids", shape=[3], data=[1, 2, 3]),
        (*BAD_TENSOR, "rank"),
    ),
    _json(
        "wrong fixed axis",
        "mixed",
        _with("mixed", "x", shape=[1, 3], data=[1, 2, 3]),
        (*BAD_TENSOR, "at axis 1"),
    ),
    _json(
        "batch sizes differ",
        "mixed",
        _with("mixed", "flag", shape=[2], data=[True, False]),
        (*BAD_TENSOR, "same batch size"),
    ),
    _json(
        "too few elements",
        "mixed",
        _with("mixed", "ids", data=[1, 2]),
        (*BAD_TENSOR, "holds 3 elements but data has 2"),
    ),
    _json(
        "ragged nesting",
        "mixed",
        _with("mixed", "x", shape=[2, 2], data=[[1, 2], [3]]),
        (*BAD_TENSOR, "nested data does not match"),
    ),
    _json(
        "INT8 out of range",
        "numbers",
        _with("numbers", "a", data=[1, 128]),
        (*BAD_TENSOR, "out of range for INT8"),
    ),
    _json(
        "UINT8 negative",
        "numbers",
        _with("numbers", "b", data=[1, -1]),
        (*BAD_TENSOR, "out of range for UINT8"),
    ),
    _json(
        "FP16 overflow",
        "mixed",
        _with("mixed", "h", data=[70000.0]),
        (*BAD_TENSOR, "out of range for FP16"),
    ),
    _json(
        "FP64 1e400 is infinite",
        "numbers",
        json.dumps(_with("numbers", "e", data=[0.0, 0.0]))
        .encode()
        .replace(b"[0.0, 0.0]", b"[1e400, 0.0]"),
        (*BAD_TENSOR, "finite numbers"),
    ),
    _json(
        "floats for ints",
        "numbers",
        _with("numbers", "d", data=[1.5, 2]),
        (*BAD_TENSOR, "INT32 data must be integers"),
    ),
    _json(
        "1 for BOOL",
        "mixed",
        _with("mixed", "flag", data=[1]),
        (*BAD_TENSOR, "BOOL data must be true/false"),
    ),
    _json(
        "number for BYTES",
        "mixed",
        _with("mixed", "text", data=[5]),
        (*BAD_TENSOR, "BYTES data must be strings"),
    ),
    _json(
        "text over max_bytes",
        "mixed",
        _with("mixed", "text", data=[TEXT_17]),
        (*BAD_TENSOR, "17 bytes of UTF-8, more than the 16 allowed"),
    ),
    _json(
        "lone surrogate",
        "mixed",
        json.dumps(_with("mixed", "text", data=["SURROGATE"]))
        .encode()
        .replace(b"SURROGATE", b"\\ud800"),
        (*BAD_TENSOR, "valid UTF-8"),
    ),
    _json(
        "absurd shape",
        "numbers",
        _with("numbers", "a", shape=[2**40, 2]),
        (*TOO_LARGE, "declares more than"),
    ),
    _json(
        "unknown output",
        "mixed",
        {**_good("mixed"), "outputs": [{"name": "probs"}]},
        (*BAD_TENSOR, "unknown output 'probs'"),
    ),
    # binary framing that lies (400) or tensors that do not fit (422)
    Case(
        id="header length not a number",
        model="mixed",
        body=_binary("mixed")[0],
        header_length="abc",
        refused=(*BAD_REQUEST, "must be an integer"),
        batch=False,
    ),
    Case(
        id="header length past the body",
        model="mixed",
        body=_binary("mixed")[0],
        header_length="99999999",
        refused=(*BAD_REQUEST, "does not fit"),
        batch=False,
    ),
    _bin(
        "negative binary size",
        "numbers",
        _binary("numbers", a=-2),
        (*BAD_REQUEST, "non-negative integer"),
    ),
    _bin(
        "binary size past the end",
        "numbers",
        _binary("numbers", e=1000),
        (*BAD_REQUEST, "runs past the end"),
    ),
    _bin(
        "trailing bytes",
        "numbers",
        (_binary("numbers")[0] + b"\0\0", _binary("numbers")[1]),
        (*BAD_REQUEST, "the binary data is"),
    ),
    _bin(
        "size does not fit the shape",
        "numbers",
        _binary("numbers", chunk=_replace("d", b"\0" * 4), d=4),
        (*BAD_TENSOR, "binary_data_size is 4 bytes"),
    ),
    _bin(
        "NaN in binary FP32",
        "mixed",
        _binary("mixed", chunk=_replace("x", struct.pack("<2f", math.nan, 1.0))),
        (*BAD_TENSOR, "finite numbers"),
    ),
    _bin(
        "Inf in binary FP16",
        "mixed",
        _binary("mixed", chunk=_replace("h", struct.pack("<e", math.inf))),
        (*BAD_TENSOR, "finite numbers"),
    ),
    _bin(
        "BOOL byte 2",
        "mixed",
        _binary("mixed", chunk=_replace("flag", b"\x02")),
        (*BAD_TENSOR, "0 or 1"),
    ),
    _bin(
        "BYTES length that lies",
        "mixed",
        _binary("mixed", chunk=_replace("text", _BYTES_LENGTH.pack(100) + b"abc")),
        (*BAD_TENSOR, "past the end of its data"),
    ),
    _bin(
        "BYTES not UTF-8",
        "mixed",
        _binary("mixed", chunk=_replace("text", _BYTES_LENGTH.pack(2) + b"\xc3\x28")),
        (*BAD_TENSOR, "not valid UTF-8"),
    ),
    _bin(
        "binary text over max_bytes",
        "mixed",
        _binary("mixed", chunk=_replace("text", _BYTES_LENGTH.pack(17) + TEXT_17.encode())),
        (*BAD_TENSOR, "more than the 16 allowed"),
    ),
]


# -- the three callers --------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, Any]


@pytest.fixture(scope="module")
def model_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, StarletteClient]]:
    config = ServingConfig(ort_threads=1, max_request_bytes=1024 * 1024, max_queue_delay_ms=0)
    clients: dict[str, StarletteClient] = {}
    try:
        for model, signature in SIGNATURES.items():
            root = tmp_path_factory.mktemp(model)
            data = _echo_onnx(signature)
            (root / "model.onnx").write_bytes(data)
            manifest = {
                "format_version": 1,
                "name": model,
                "version": 1,
                "model_file": "model.onnx",
                "sha256": hashlib.sha256(data).hexdigest(),
                "signature": signature,
            }
            (root / "modelway.json").write_text(json.dumps(manifest))
            client = StarletteClient(create_hosting_app(model_dir=root, config=config))
            clients[model] = client.__enter__()
        yield clients
    finally:
        for client in clients.values():
            client.__exit__(None, None, None)


def _headers(case: Case) -> dict[str, str]:
    headers = {"content-type": case.content_type or "application/json"}
    if case.header_length is not None:
        headers["inference-header-content-length"] = case.header_length
    return headers


def _serve(servers: dict[str, StarletteClient], case: Case) -> Answer:
    response = servers[case.model].post("/invocations", content=case.body, headers=_headers(case))
    body = (
        response.json()
        if response.headers["content-type"] == "application/json"
        else {
            "raw": response.content,
            "json_length": response.headers.get("inference-header-content-length"),
        }
    )
    return Answer(status=response.status_code, body=body)


@pytest.fixture
def router(
    client: TestClient,
    registry: SqliteRegistry,
    runtime: FakeRuntime,
    model_servers: dict[str, StarletteClient],
) -> Callable[[Case], Answer]:
    for model, signature in SIGNATURES.items():
        add_version(registry, model=model, signature=Signature.model_validate(signature))
    key = make_key(registry, models=list(SIGNATURES))

    def answer(call: Any) -> RuntimeResponse:
        # The router's dispatch goes to the real model server of that model.
        model = "mixed" if "mixed" in call.endpoint else "numbers"
        response = model_servers[model].post(
            "/invocations", content=call.body, headers={"content-type": call.content_type}
        )
        return RuntimeResponse(
            body=response.content, content_type=response.headers["content-type"], variant="v1"
        )

    runtime.answer = answer

    def post(case: Case) -> Answer:
        runtime.calls.clear()
        response = client.post(
            f"/v2/models/{case.model}/infer",
            content=case.body,
            headers={**_headers(case), "x-api-key": key},
        )
        if case.refused is not None:
            assert runtime.calls == [], "a refused request reached the model server"
        return Answer(status=response.status_code, body=response.json())

    return post


def _batch(case: Case) -> Answer:
    signature = oip.Signature.from_dict(SIGNATURES[case.model])
    try:
        sample = JsonLinesParser(signature=signature).parse(case.body, record=1)
    except ModelwayError as exc:
        return Answer(status=exc.status, body=exc.to_dict())
    return Answer(status=200, body={"tensors": [values for values, _ in sample.tensors]})


def _check(answer: Answer, case: Case, caller: str) -> None:
    if case.refused is None:
        assert answer.status == 200, f"{caller}: {answer.body}"
        return
    status, code, fragment = case.refused
    assert (answer.status, answer.body.get("code")) == (status, code), f"{caller}: {answer.body}"
    assert set(answer.body) == {"error", "code"}, caller
    assert fragment in answer.body["error"], f"{caller}: {answer.body['error']}"


def _sent_values(case: Case) -> dict[str, list[Any]]:
    length = oip.header_length(content_type=case.content_type, header=case.header_length)
    request = oip.decode_request(case.body, json_length=length)
    return {t.name: _flat(t) for t in request.inputs}


def _flat(tensor: oip.Tensor) -> list[Any]:
    if tensor.values is not None:
        return list(tensor.values)
    assert tensor.raw is not None
    code = _CODES[tensor.datatype]
    return [v for (v,) in struct.iter_unpack(f"<{code}", tensor.raw)]


def _echoed(answer: Answer) -> dict[str, list[Any]]:
    if "raw" in answer.body:
        response = oip.decode_response(
            answer.body["raw"], json_length=int(answer.body["json_length"])
        )
    else:
        response = oip.decode_response(json.dumps(answer.body).encode())
    return {t.name.removesuffix("_out"): _flat(t) for t in response.outputs}


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_router_batch_and_model_server_agree(
    case: Case,
    router: Callable[[Case], Answer],
    model_servers: dict[str, StarletteClient],
) -> None:
    served = _serve(model_servers, case)
    _check(served, case, "model server")
    _check(router(case), case, "router")
    if case.batch:
        _check(_batch(case), case, "batch")
    if case.refused is None:
        sent = _sent_values(case)
        assert _echoed(served) == sent  # the graph really ran on what was sent, BYTES too
