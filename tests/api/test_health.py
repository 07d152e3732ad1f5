"""Health, server metadata and the error shape of requests that match no route."""

from __future__ import annotations

from fastapi.testclient import TestClient

from functions.api.deps import get_registry


def test_live_and_ready_need_no_key(client: TestClient) -> None:
    assert client.get("/v2/health/live").json() == {"live": True}
    assert client.get("/v2/health/ready").json() == {"ready": True}


def test_ready_is_503_when_the_registry_is_unreachable(client: TestClient) -> None:
    class Down:
        def get_key(self, *, key_id: str) -> None:
            raise OSError("disk gone")

    client.app.dependency_overrides[get_registry] = Down  # type: ignore[attr-defined]
    response = client.get("/v2/health/ready")
    assert response.status_code == 503
    assert response.json() == {"error": "the registry is unreachable", "code": "not_ready"}
    assert response.headers["retry-after"] == "5"


def test_server_metadata_names_the_binary_extension(client: TestClient) -> None:
    body = client.get("/v2").json()
    assert body["name"] == "modelway"
    assert "binary_tensor_data" in body["extensions"]


def test_unknown_route_is_404_in_the_standard_shape(client: TestClient) -> None:
    response = client.get("/v3/nothing-here")
    assert response.status_code == 404
    assert response.json() == {"error": "no route GET /v3/nothing-here", "code": "not_found"}


def test_wrong_method_is_405_in_the_standard_shape(client: TestClient) -> None:
    response = client.delete("/v2/health/live")
    assert response.status_code == 405
    assert response.json()["code"] == "method_not_allowed"
