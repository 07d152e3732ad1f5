"""Version numbers from the outside: any size, any route (issue 10: a number past 64 bits was a
500). A number that can never name a version (0, negative, past 2**63-1) is a 400; one that
could but does not is a 404 ``version_not_found``."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from functions.core.registry.base import ModelVersion
from tests.api.api_testkit import MODEL, digit_request

# Every route with a version in its path (checked against the app below), and one in a body.
VERSION_ROUTES = [
    ("GET", "/v2/models/{model}/versions/{version}"),
    ("GET", "/v2/models/{model}/versions/{version}/ready"),
    ("POST", "/v2/models/{model}/versions/{version}/infer"),
    ("GET", "/v1/models/{model}/versions/{version}"),
    ("DELETE", "/v1/models/{model}/versions/{version}"),
    ("POST", "/v1/models/{model}/versions/{version}/approve"),
    ("POST", "/v1/models/{model}/versions/{version}/reject"),
]
NEVER = ["0", "-1", "37758839676792876302336", "99999999999999999999", str(2**63)]
UNKNOWN = ["9", str(2**63 - 1)]


def test_the_list_above_is_every_route_that_takes_a_version(app: FastAPI) -> None:
    routes = {
        (method.upper(), path)
        for path, operations in app.openapi()["paths"].items()
        if "{version}" in path
        for method in operations
    }
    assert routes == set(VERSION_ROUTES)


def call(client: TestClient, key: str, method: str, template: str, version: str) -> Any:
    path = template.format(model=MODEL, version=version)
    body = digit_request() if template.endswith("/infer") else {} if method == "POST" else None
    return client.request(method, path, headers={"x-api-key": key}, json=body)


@pytest.mark.parametrize("version", NEVER)
@pytest.mark.parametrize(("method", "template"), VERSION_ROUTES)
def test_a_number_no_version_can_have_is_400(
    client: TestClient,
    admin_key: str,
    digits_v1: ModelVersion,
    method: str,
    template: str,
    version: str,
) -> None:
    response = call(client, admin_key, method, template, version)
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "invalid_request"
    assert "version" in response.json()["error"]


@pytest.mark.parametrize("version", UNKNOWN)
@pytest.mark.parametrize(("method", "template"), VERSION_ROUTES)
def test_a_version_that_does_not_exist_is_404(
    client: TestClient,
    admin_key: str,
    digits_v1: ModelVersion,
    method: str,
    template: str,
    version: str,
) -> None:
    response = call(client, admin_key, method, template, version)
    assert (response.status_code, response.json()["code"]) == (404, "version_not_found")


@pytest.mark.parametrize("field", ["version", "canary_version", "shadow_version"])
@pytest.mark.parametrize("number", [0, 2**63, 37758839676792876302336])
def test_an_alias_cannot_point_at_an_impossible_number(
    client: TestClient, admin_key: str, digits_v1: ModelVersion, field: str, number: int
) -> None:
    body = {"version": 1, field: number} if field != "version" else {"version": number}
    response = client.put(
        f"/v1/models/{MODEL}/aliases/default", headers={"x-api-key": admin_key}, json=body
    )
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "validation_error"
    assert (
        client.get(f"/v1/models/{MODEL}/aliases", headers={"x-api-key": admin_key}).json()[
            "aliases"
        ][0]["version"]
        == 1
    )
