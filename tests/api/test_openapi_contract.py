"""The OpenAPI document is the contract (issue 10: a schema-driven fuzzer found 30 responses
the document did not allow). The ``client`` fixture checks every response of the API suite
against ``/openapi.json`` (``tests/openapi_contract.py``); the tests here drive every
documented operation with hostile values, deterministically and bounded, so that check sees
every route's errors, and pin down the document itself."""

from __future__ import annotations

import itertools
import re
from typing import Any
from urllib.parse import quote

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from functions.core import naming
from functions.core.registry.base import ModelVersion
from tests.api.api_testkit import MODEL, digit_request

METHODS = ["get", "put", "post", "delete", "patch", "options", "head"]
SANE = {"model": MODEL, "version": "1", "alias": "default", "key_id": "key_000000000000"}
HOSTILE_PARAMS = [
    "0",
    "-1",
    "1.5",
    "1e3",
    "99999999999999999999",
    "37758839676792876302336",
    "digits\n",
    "Digits",
    "..",
    "a" * 300,
    "dígitos",
    "%00",
    "*",
]
HOSTILE_BODIES: list[Any] = [
    None,
    b"",
    b"not json",
    b"\xff\xfe",
    [],
    "a string",
    {},
    {"unexpected": 1},
    {"version": "1"},
    {"name": " ", "models": ["digits\n"]},
    {"name": "k", "models": ["*"], "tenant": "Other Tenant"},
    {"version": 1, "canary_version": 2, "canary_weight": 101},
    {"artifact_key": "uploads/../../etc/passwd"},
    {"inputs": []},
    {"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 1, 8, 8], "data": [1]}]},
    {"inputs": [{"name": "input", "datatype": "FP99", "shape": [-1], "data": []}]},
    digit_request(),
]


def operations(app: FastAPI) -> list[tuple[str, str]]:
    return [(m, p) for p, ops in app.openapi()["paths"].items() for m in ops]


def fill(template: str, **override: str) -> str:
    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        return quote(override.get(name, SANE.get(name, "x")), safe="")

    return re.sub(r"\{([^}]+)\}", value, template)


def send(client: TestClient, method: str, path: str, key: str | None, body: Any = None) -> Any:
    headers = {"x-api-key": key} if key else {}
    if isinstance(body, bytes):
        return client.request(method, path, headers=headers, content=body)
    return client.request(method, path, headers=headers, json=body)


def test_every_operation_lists_its_errors_with_the_error_body(app: FastAPI) -> None:
    document = app.openapi()
    assert "HTTPValidationError" not in document["components"]["schemas"]
    for method, path in operations(app):
        responses = document["paths"][path][method]["responses"]
        errors = {int(s) for s in responses if s.isdigit() and int(s) >= 400}
        assert {429, 500} <= errors, (method, path)
        if path.startswith(("/v1", "/v2/models")):
            assert {400, 401, 403} <= errors, (method, path)
        if "requestBody" in document["paths"][path][method]:
            assert 422 in errors, (method, path)
        for status in errors:
            schema = responses[str(status)]["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/ErrorBody"}, (method, path, status)


def test_request_schemas_carry_the_constraints_the_code_enforces(app: FastAPI) -> None:
    schemas = app.openapi()["components"]["schemas"]
    key = schemas["CreateKey"]["properties"]
    assert key["models"]["items"]["pattern"] == naming.MODEL_SCOPE_PATTERN
    assert key["models"]["minItems"] == 1
    assert key["tenant"]["anyOf"][0]["pattern"] == naming.TENANT_NAME_PATTERN
    assert schemas["CreateKey"]["additionalProperties"] is False
    alias = schemas["SetAlias"]["properties"]
    # Optional since a body may change only the shadow/capture settings.
    number = alias["version"]["anyOf"][0]
    assert (number["minimum"], number["maximum"]) == (1, 2**63 - 1)
    assert (alias["canary_weight"]["minimum"], alias["canary_weight"]["maximum"]) == (0, 100)
    assert alias["shadow_version"]["anyOf"][0]["minimum"] == 1
    for rate in ("shadow_percent", "capture_percent"):
        assert (alias[rate]["anyOf"][0]["minimum"], alias[rate]["anyOf"][0]["maximum"]) == (0, 100)
    register = schemas["RegisterVersion"]["properties"]
    assert register["alias"]["anyOf"][0]["pattern"] == naming.ALIAS_NAME_PATTERN
    assert register["artifact_key"]["pattern"] == "^uploads/"
    version = next(
        p
        for p in app.openapi()["paths"]["/v2/models/{model}/versions/{version}"]["get"][
            "parameters"
        ]
        if p["name"] == "version"
    )
    assert (version["schema"]["minimum"], version["schema"]["maximum"]) == (1, 2**63 - 1)


def test_a_method_a_path_does_not_have_is_405_naming_every_method_it_has(
    app: FastAPI, client: TestClient, admin_key: str
) -> None:
    paths = app.openapi()["paths"]
    checked = 0
    for template, ops in paths.items():
        allowed = ", ".join(sorted(m.upper() for m in ops))
        for method in METHODS:
            if method in ops:
                continue
            response = send(client, method.upper(), fill(template), admin_key)
            assert response.status_code == 405, (method, template)
            assert response.headers["allow"] == allowed, (method, template)
            checked += 1
    # e.g. GET|POST /v1/keys and GET|DELETE /v1/keys/{key_id} are two routes each.
    assert paths["/v1/keys"].keys() == {"get", "post"}
    assert checked > 100


def test_no_key_is_401_on_every_keyed_operation(app: FastAPI, client: TestClient) -> None:
    for method, template in operations(app):
        if template.startswith(("/v1", "/v2/models")):
            response = send(client, method.upper(), fill(template), None, digit_request())
            assert response.status_code == 401, (method, template)


@pytest.mark.parametrize("who", ["admin", "user"])
def test_hostile_path_values_get_documented_answers_and_no_5xx(
    app: FastAPI,
    client: TestClient,
    digits_v1: ModelVersion,
    admin_key: str,
    user_key: str,
    who: str,
) -> None:
    key = admin_key if who == "admin" else user_key
    for method, template in operations(app):
        for name in re.findall(r"\{([^}]+)\}", template):
            for value in HOSTILE_PARAMS:
                path = fill(template, **{name: value})
                response = send(client, method.upper(), path, key, digit_request())
                # The client fixture has checked it against the document already.
                assert response.status_code < 500, (method, path, response.text)


def test_hostile_bodies_get_documented_answers_and_no_5xx(
    app: FastAPI, client: TestClient, digits_v1: ModelVersion, admin_key: str
) -> None:
    document = app.openapi()["paths"]
    posted = [
        (m, t)
        for m, t in operations(app)
        if "requestBody" in document[t][m] or t.endswith("/infer")
    ]
    assert len(posted) >= 5
    for (method, template), body in itertools.product(posted, HOSTILE_BODIES):
        if template == "/v1/keys/{key_id}/rotate":
            continue
        response = send(client, method.upper(), fill(template), admin_key, body)
        assert response.status_code < 500, (method, template, body, response.text)


@pytest.mark.parametrize(
    "query",
    ["limit=0", "limit=99999999999999999999", "limit=x", "model=digits%0A", "alias=Bad%20Alias"],
)
def test_hostile_queries_get_documented_answers(
    client: TestClient, digits_v1: ModelVersion, admin_key: str, query: str
) -> None:
    for path in ("/v1/jobs", f"/v1/models/{MODEL}/history", f"/v2/models/{MODEL}/ready"):
        response = client.get(f"{path}?{query}", headers={"x-api-key": admin_key})
        assert response.status_code < 500


def test_the_document_says_what_delete_means(app: FastAPI) -> None:
    """A revoked key and a retired version stay readable: the document says so, and the
    suite's checker holds the answers to it (``test_admin_scope``: GET after DELETE is 200
    with ``active: false``)."""
    paths = app.openapi()["paths"]
    revoke = paths["/v1/keys/{key_id}"]["delete"]["description"]
    assert "active: false" in revoke
    assert "again" in revoke
    retire = paths["/v1/models/{model}/versions/{version}"]["delete"]["description"]
    assert "status: retired" in retire


@pytest.mark.parametrize(
    "path", [f"/v2/models/{MODEL}/infer", f"/v2/models/{MODEL}/versions/1/infer"]
)
def test_inference_answers_carry_only_the_headers_the_document_names(
    app: FastAPI,
    client: TestClient,
    admin_key: str,
    digits_v1: ModelVersion,
    path: str,
) -> None:
    """A client generated from the document sees every header a 200 carries (version, alias,
    request id, Server-Timing), and can send the ones the router reads."""
    template = path.replace(MODEL, "{model}").replace("/versions/1/", "/versions/{version}/")
    operation = app.openapi()["paths"][template]["post"]
    documented = set(operation["responses"]["200"]["headers"])
    parameters = {p["name"] for p in operation["parameters"] if p["in"] == "header"}
    assert {"x-request-timeout", "x-request-id", "traceparent"} <= parameters
    response = client.post(
        path,
        json=digit_request(),
        headers={"x-api-key": admin_key, "x-request-id": "req-1"},
    )
    assert response.status_code == 200, response.text
    sent = set(response.headers) - {"content-type", "content-length"}
    assert sent <= documented, sent - documented
    assert {"x-model-version", "x-request-id", "server-timing"} <= sent
    assert response.headers["x-request-id"] == "req-1"
