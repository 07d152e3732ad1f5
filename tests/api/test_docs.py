"""/docs: Swagger UI from the package (no CDN), no key, relative URLs (API Gateway's stage),
examples on every route that match what the router really answers, and the page rendered by a
real headless Chromium with the network cut off but loopback."""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient

from cli.invoke import LocalLambdaContext
from functions.api import handler as handler_module
from functions.api.docs import ASSETS
from functions.api.openapi import ERROR_EXAMPLES, INFER_REQUEST_EXAMPLE
from functions.core.registry.base import ModelVersion
from tests.api.api_testkit import MODEL
from tests.events import sample_event

STAGE = "dev"


def _references(html: str) -> list[str]:
    """Every URL the page loads: src/href attributes and the document's URL in the script."""
    urls = re.findall(r'(?:src|href)="([^"]+)"', html)
    urls += re.findall(r'new URL\("([^"]+)"', html)
    return urls


def test_docs_page_needs_no_key_and_loads_nothing_from_elsewhere(client: TestClient) -> None:
    response = client.get("/docs")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    urls = _references(response.text)
    assert len(urls) == 3, urls  # the stylesheet, the script, the document
    for url in urls:
        assert not url.startswith(("/", "http:", "https:", "//")), url
    # Relative to the page: behind API Gateway every one stays under the stage.
    page = f"https://abc.execute-api.us-east-1.amazonaws.com/{STAGE}/docs"
    for url in urls:
        resolved = urljoin(page, url)
        assert resolved.startswith(f"https://abc.execute-api.us-east-1.amazonaws.com/{STAGE}/")
        path = "/" + resolved.split(f"/{STAGE}/", 1)[1].split("?")[0]
        assert client.get(path).status_code == 200, path


def test_docs_assets_are_swagger_ui_from_the_installed_package(client: TestClient) -> None:
    script = client.get("/docs/swagger-ui-bundle.js")
    assert script.status_code == 200
    assert script.headers["content-type"].startswith("text/javascript")
    assert b"SwaggerUIBundle" in script.content
    assert "max-age" in script.headers["cache-control"]
    style = client.get("/docs/swagger-ui.css")
    assert style.headers["content-type"].startswith("text/css")
    assert b".swagger-ui" in style.content
    missing = client.get("/docs/secrets.txt")
    assert (missing.status_code, missing.json()["code"]) == (404, "not_found")
    assert set(ASSETS) == {"swagger-ui-bundle.js", "swagger-ui.css"}


def test_docs_with_a_slash_redirects_relatively(client: TestClient) -> None:
    response = client.get("/docs/", follow_redirects=False)
    assert response.status_code == 308
    # From /dev/docs/ a browser lands on /dev/docs, not on the API's root without the stage.
    assert urljoin(f"https://h/{STAGE}/docs/", response.headers["location"]) == (
        f"https://h/{STAGE}/docs"
    )


def test_openapi_document_is_served_without_a_key_on_aws_too(app: FastAPI) -> None:
    settings = app.state.modelway.settings.model_copy(update={"env": "dev"})
    from functions.api.app import create_app

    with TestClient(create_app(settings=settings)) as aws_client:
        document = aws_client.get("/openapi.json")
    assert document.status_code == 200
    # Relative to where the document is served, so "Try it out" keeps the stage.
    assert document.json()["servers"] == [{"url": ".", "description": "this API"}]


def test_every_route_has_examples_and_keyed_routes_ask_for_the_key(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    scheme = document["components"]["securitySchemes"]["apiKey"]
    assert (scheme["type"], scheme["in"], scheme["name"]) == ("apiKey", "header", "x-api-key")
    operations = 0
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            where = f"{method.upper()} {path}"
            operations += 1
            for status, response in operation["responses"].items():
                if int(status) >= 400:
                    examples = response["content"]["application/json"]["examples"]
                    assert examples, (where, status)
                    for example in examples.values():
                        assert set(example["value"]) == {"error", "code"}, (where, status)
            body = operation.get("requestBody")
            if body is not None:
                media = body["content"]["application/json"]
                schema = media["schema"]
                if "$ref" in schema:
                    schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
                assert media.get("examples") or schema.get("examples"), where
            keyed = "401" in operation["responses"]
            assert (operation.get("security") == [{"apiKey": []}]) is keyed, where
            assert keyed is path.startswith(("/v2/models", "/v1/")), where
    assert operations >= 25


def _example(status: int, name: str) -> dict[str, str]:
    return ERROR_EXAMPLES[status][name]


def test_documented_examples_are_what_the_router_answers(
    client: TestClient, digits_v1: ModelVersion, user_key: str
) -> None:
    document = client.get("/openapi.json").json()
    infer = document["paths"]["/v2/models/{model}/infer"]["post"]
    request = infer["requestBody"]["content"]["application/json"]["examples"]["digits"]["value"]
    assert request == INFER_REQUEST_EXAMPLE
    key = {"x-api-key": user_key}
    ok = client.post(f"/v2/models/{MODEL}/infer", json=request, headers=key)
    assert ok.status_code == 200, ok.text

    no_key = client.post(f"/v2/models/{MODEL}/infer", json=request)
    assert no_key.json() == _example(401, "unauthenticated")
    unknown = client.post("/v2/models/iris/infer", json=request, headers=key)
    # A digits-only key is refused iris before the lookup: as the 403 example says.
    body = unknown.json()
    body["error"] = re.sub(r"key_[0-9a-f]{12}", "key_ada1b02ed1bf", body["error"])
    assert body == _example(403, "forbidden")
    no_version = client.post(f"/v2/models/{MODEL}/versions/9/infer", json=request, headers=key)
    assert no_version.json() == _example(404, "version_not_found")
    flat = {"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 64], "data": [1] * 64}]}
    bad = client.post(f"/v2/models/{MODEL}/infer", json=flat, headers=key)
    assert bad.json() == _example(422, "invalid_tensor")
    not_json = client.post(f"/v2/models/{MODEL}/infer", content=b"nope", headers=key)
    assert not_json.json() == _example(400, "invalid_request")


def _apigw_event(resource: str, path: str, proxy: str | None) -> dict[str, Any]:
    """A REST API proxy event as the stage delivers it (from the health sample's shape)."""
    event: dict[str, Any] = sample_event("api-health.json")
    event.update(resource=resource, path=path, httpMethod="GET")
    event["pathParameters"] = {"proxy": proxy} if proxy is not None else None
    event["requestContext"].update(
        resourcePath=resource, path=f"/{STAGE}{path}", stage=STAGE, authorizer=None
    )
    return event


def test_docs_through_the_lambda_handler_behind_a_stage(
    app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(handler_module, "_adapter", handler_module.build_adapter(app))
    page = handler_module.handler(_apigw_event("/docs", "/docs", None), LocalLambdaContext())
    assert page["statusCode"] == 200
    assert "SwaggerUIBundle" in page["body"]
    asset = handler_module.handler(
        _apigw_event("/docs/{proxy+}", "/docs/swagger-ui.css", "swagger-ui.css"),
        LocalLambdaContext(),
    )
    assert asset["statusCode"] == 200
    assert asset["isBase64Encoded"] is False  # text: API Gateway passes it through as is
    assert ".swagger-ui" in asset["body"]
    document = handler_module.handler(
        _apigw_event("/openapi.json", "/openapi.json", None), LocalLambdaContext()
    )
    assert json.loads(document["body"])["info"]["title"] == "modelway"


# --- a real browser -----------------------------------------------------------------------


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    pytest.fail("no Chromium: `apt-get install -y chromium` (make test installs it when missing)")


@pytest.fixture
def staged_router(app: FastAPI) -> Iterator[str]:
    """The router over HTTP on loopback under a stage prefix, as API Gateway mounts it: only
    /dev/... reaches the app (stripped of /dev); anything else is 404. A page that asked for
    /openapi.json or /docs/... from the root would break here."""

    async def stage(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            path = scope["path"]
            if not path.startswith(f"/{STAGE}/"):
                await send({"type": "http.response.start", "status": 404, "headers": []})
                await send({"type": "http.response.body", "body": b"outside the stage"})
                return
            inner = path[len(STAGE) + 1 :]
            scope = {**scope, "path": inner, "raw_path": inner.encode()}
        await app(scope, receive, send)

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(stage, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "the router did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}/{STAGE}/docs"
    server.should_exit = True
    thread.join(timeout=10)


def _browse(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    command = [
        _chromium(),
        "--headless",
        "--no-sandbox",  # tests run as root in CI
        "--disable-gpu",
        "--disable-dev-shm-usage",
        # Offline but loopback: a CDN reference would fail to load, and the page with it.
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        "--virtual-time-budget=20000",
        "--window-size=1280,2200",
        *args,
        url,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.timeout(240)
def test_docs_render_in_headless_chromium_offline_behind_a_stage(
    staged_router: str, tmp_path: Path
) -> None:
    dumped = _browse(staged_router, "--dump-dom")
    assert dumped.returncode == 0, dumped.stderr[-2000:]
    dom = dumped.stdout
    # What Swagger UI builds from the document: one block per operation, by path.
    paths = set(re.findall(r'class="opblock-summary-path" data-path="([^"]+)"', dom))
    for expected in (
        "/v2/health/live",
        "/v2/models/{model}/infer",
        "/v2/models/{model}/versions/{version}/infer",
        "/v1/models/{model}/aliases/{alias}",
        "/v1/keys/{key_id}/rotate",
        "/v1/jobs/{job_id}",
    ):
        assert expected in paths, (expected, sorted(paths))
    assert "Authorize" in dom  # the x-api-key scheme
    assert "Failed to load API definition" not in dom
    shot = tmp_path / "docs.png"
    taken = _browse(staged_router, f"--screenshot={shot}")
    assert taken.returncode == 0, taken.stderr[-2000:]
    assert shot.stat().st_size > 50_000  # a rendered page, not a blank one
