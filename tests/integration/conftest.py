"""Every response the integration suite gets from a modelway router over HTTP is checked
against the router's own OpenAPI document (``tests/openapi_contract.py``). A router is any
origin whose ``/openapi.json`` is modelway's; other servers (the model server) are left alone.
"""

from __future__ import annotations

import httpx
import pytest

from tests.openapi_contract import ContractChecker


class _Routers:
    def __init__(self) -> None:
        self._checkers: dict[str, ContractChecker | None] = {}

    def checker_for(self, origin: str) -> ContractChecker | None:
        if origin not in self._checkers:
            self._checkers[origin] = None
            try:
                with httpx.Client(timeout=5) as probe:
                    response = probe.get(f"{origin}/openapi.json")
                document = response.json() if response.status_code == 200 else {}
            except (httpx.HTTPError, ValueError):
                document = {}
            if isinstance(document, dict) and document.get("info", {}).get("title") == "modelway":
                self._checkers[origin] = ContractChecker(document)
        return self._checkers[origin]


_routers = _Routers()


@pytest.fixture(autouse=True)
def _check_router_responses(monkeypatch: pytest.MonkeyPatch) -> None:
    original = httpx.Client.send
    probing = False

    def send(self: httpx.Client, request: httpx.Request, **kwargs: object) -> httpx.Response:
        nonlocal probing
        response = original(self, request, **kwargs)  # type: ignore[arg-type]
        if probing or request.url.host not in ("127.0.0.1", "localhost"):
            return response
        origin = f"{request.url.scheme}://{request.url.netloc.decode()}"
        probing = True
        try:
            checker = _routers.checker_for(origin)
        finally:
            probing = False
        if checker is not None:
            checker.check_response(response)
        return response

    monkeypatch.setattr(httpx.Client, "send", send)
