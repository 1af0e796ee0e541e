"""The HTTP shells: error codes to statuses, 422 details, bearer auth, which routes live on which app."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from meshagents.apps.wg_hub.events import EventBus
from meshagents.apps.wg_hub.install_bundle import BundleStore
from meshagents.apps.wg_hub.web import operator_app, public_app
from meshagents.errors import FnError

pytestmark = pytest.mark.unit

KEYS = {"wg_public_key": "A" * 43 + "=", "device_key": "B" * 43 + "="}


@dataclass
class Facts:
    mesh_address: str = "10.42.0.1"


@dataclass
class StubHub:
    """Stands in for the operations layer (the real one needs WireGuard; see the integration tests)."""

    error: FnError | None = None
    facts: Facts = field(default_factory=Facts)
    bus: EventBus = field(default_factory=EventBus)
    calls: list[tuple[str, Any]] = field(default_factory=list)
    bundles: BundleStore = field(default_factory=lambda: BundleStore(Path("/nonexistent/install")))

    def _do(self, name: str, *args: Any) -> dict[str, Any]:
        self.calls.append((name, args))
        if self.error is not None:
            raise self.error
        return {"ok": name}

    def enroll(self, *a: Any) -> dict[str, Any]:
        return self._do("enroll", *a)

    def refused(self, *a: Any) -> dict[str, Any]:
        return self._do("refused", *a)

    def peers(self) -> list[dict[str, Any]]:
        self._do("peers")
        return []

    def revoke_peer(self, *a: Any) -> dict[str, Any]:
        return self._do("revoke", *a)

    def audit_post(self, *a: Any) -> dict[str, Any]:
        return self._do("audit_post", *a)


@pytest.mark.parametrize(
    ("code", "status"),
    [("token_expired", 401), ("token_used", 401), ("token_invalid", 401), ("device_exists", 409),
     ("profile_unknown", 422), ("something_else", 500)],
)  # fmt: skip
def test_error_codes_map_to_statuses(code: str, status: int) -> None:
    client = TestClient(public_app(StubHub(error=FnError(code, "msg", device_id="x"))))  # type: ignore[arg-type]
    r = client.post("/enroll", json={"token": "mat1.x.y", **KEYS})
    assert r.status_code == status
    assert r.json()["error"] == code and r.json()["device_id"] == "x"


def test_malformed_input_is_422_with_fields() -> None:
    hub = StubHub()
    client = TestClient(public_app(hub))  # type: ignore[arg-type]
    for body in (
        {},
        {"token": "t", "wg_public_key": "x", "device_key": "y"},
        {"token": "t", **KEYS, "extra": 1},
    ):
        r = client.post("/enroll", json=body)
        assert r.status_code == 422 and r.json()["error"] == "invalid_request" and r.json()["fields"]
    r = client.post("/enroll", content=b"{", headers={"content-type": "application/json"})
    assert r.status_code == 422
    assert hub.calls == []
    big = client.post("/enroll", content=b"x", headers={"content-length": str(9 * 1024 * 1024)})
    assert big.status_code == 413

    def chunks() -> Iterator[bytes]:  # no Content-Length: Transfer-Encoding chunked
        for _ in range(24 * 16):
            yield b" " * 65536

    r = client.post("/enroll", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413 and r.json()["error"] == "body_too_large"
    assert hub.calls == []
    assert client.get("/nope").status_code == 404  # other HTTP errors keep their usual shape


def test_operator_routes_need_the_bearer_token() -> None:
    hub = StubHub()
    client = TestClient(operator_app(hub, "s3cret"))  # type: ignore[arg-type]
    assert client.get("/healthz").status_code == 200
    assert client.get("/api/peers").status_code == 401
    assert client.get("/api/peers", headers={"Authorization": "Bearer s3cre"}).status_code == 401
    assert client.get("/api/peers", headers={"Authorization": "Basic s3cret"}).status_code == 401
    ok = client.get("/api/peers", headers={"Authorization": "Bearer s3cret"})
    assert ok.status_code == 200 and ok.json() == {"peers": []}
    assert client.post("/api/peers/dev1/revoke").status_code == 401
    assert hub.calls == [("peers", ())]
    # the audit endpoint authenticates by the checkpoint signature, not the bearer token
    r = client.post("/api/audit/dev1", json={"entries": [], "checkpoint": {}})
    assert r.status_code == 200 and hub.calls[-1][0] == "audit_post"
    assert client.post("/api/audit/..%2F", json={}).status_code in (404, 422)


def test_routes_live_on_one_app_only() -> None:
    public = TestClient(public_app(StubHub()))  # type: ignore[arg-type]
    operator = TestClient(operator_app(StubHub(), "t"))  # type: ignore[arg-type]
    for path in ("/api/peers", "/api/events", "/api/tokens", "/docs"):
        assert public.get(path).status_code == 404
    assert operator.post("/enroll", json={}).status_code == 404
    assert public.get("/healthz").json()["listener"] == "public"
