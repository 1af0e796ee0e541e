"""enrollment_submit against a scripted hub on loopback: it keeps only a manifest the token's key signed."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from nacl.signing import SigningKey

from meshagents.apps.wg_hub.config import PROFILES_DIR
from meshagents.apps.wg_hub.issue import build_manifest
from meshagents.apps.wg_hub.profiles import load_profile
from meshagents.errors import FnError
from meshagents.runtime.api import call
from meshagents.trust import manifest as manifest_mod
from meshagents.trust import tokens
from meshagents.trust.sealing import seal_answer
from meshagents.trust.signing import public_b64

pytestmark = pytest.mark.unit

OPERATOR = SigningKey.generate()
HUB_KEY = "H" * 43 + "="


class FakeHub:
    def __init__(self) -> None:
        self.mode = "good"
        self.refusals: list[dict[str, Any]] = []
        self.enroll_posts = 0
        self.sent: list[dict[str, Any]] = []  # what went over the wire, as a sniffer sees it
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:  # the public listener's /healthz, asked before the token is spent
                if self.path == "/healthz" and hub.mode != "down":
                    self.reply(200, {"ok": True, "service": "wg_hub", "listener": "public"})
                else:
                    self.reply(503, {"error": "unavailable", "message": "down"})

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                if self.path == "/enroll":
                    hub.enroll_posts += 1
                if self.path == "/enroll/refused":
                    hub.refusals.append(body)
                    self.reply(200, {"removed": True})
                elif hub.mode == "expired":
                    self.reply(401, {"error": "token_expired", "message": "expired"})
                else:
                    answer = hub.answer(body)
                    hub.sent.append(answer)
                    self.reply(200, answer)

            def reply(self, status: int, data: dict[str, Any]) -> None:
                raw = json.dumps(data).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def answer(self, req: dict[str, Any]) -> dict[str, Any]:
        # sealed as the real hub seals it (to the device key; "wrong_seal": to another key)
        seal_to = public_b64(SigningKey.generate()) if self.mode == "wrong_seal" else req["device_key"]
        return seal_answer(self._plain(req), seal_to)

    def _plain(self, req: dict[str, Any]) -> dict[str, Any]:
        signer = SigningKey.generate() if self.mode == "rogue" else OPERATOR
        device_key = public_b64(SigningKey.generate()) if self.mode == "other_key" else req["device_key"]
        body = build_manifest(
            device_name="home-wsl", device_key=device_key, wg_public_key=req["wg_public_key"],
            mesh_address="10.42.0.10", profile=load_profile(PROFILES_DIR, "minimal"),
            controllers=[public_b64(SigningKey.generate())], approvers=["@op:hub"], server_name="hub",
            serial=1, now=int(time.time()), default_ttl_s=3600, operator_key=public_b64(signer),
        )  # fmt: skip
        return {
            "device_id": "home-wsl", "address": "10.42.0.10", "address_cidr": "10.42.0.10/24",
            "hub_public_key": HUB_KEY, "hub_mesh_address": "10.42.0.1", "endpoint": "198.51.100.1:51820",
            "allowed_ips": ["10.42.0.0/24"], "persistent_keepalive": 25,
            "preshared_key": "P" * 43 + "=" if self.mode in ("matrix", "wrong_seal") else None,
            "operator_port": 8000, "manifest": manifest_mod.sign(body, signer).model_dump(mode="json"),
            "matrix": None if self.mode not in ("matrix", "wrong_seal") else {
                "homeserver_url": "http://10.42.0.1:8008", "user_id": "@dev-home-wsl:hub", "password": "pw",
                "room_alias": "#dev-home-wsl:hub", "room_id": "!r:hub",
                "approvals_room": "#operator-approvals:hub", "bot_users": ["@bot:hub"],
            },
        }  # fmt: skip


@pytest.fixture
def hub(state_dir: Path) -> Iterator[FakeHub]:
    call("device_key_init", caller="tests")
    fake = FakeHub()
    yield fake
    fake.server.shutdown()


def token(url: str, key: SigningKey = OPERATOR) -> str:
    return tokens.create(key, device_name="home-wsl", hub_endpoint=url, hub_public_key=HUB_KEY)[1]


def test_good_answer_is_kept_and_the_operator_key_pinned(hub: FakeHub, state_dir: Path) -> None:
    out = call("enrollment_submit", caller="tests", token=token(hub.url))
    assert out["device_id"] == "home-wsl" and out["healthz_url"] == "http://10.42.0.1:8000/healthz"
    folder = state_dir / "enrollment"
    assert json.loads((folder / "manifest.json").read_text())["serial"] == 1
    conf = (folder / "client.conf").read_text()
    assert "<device private key>" in conf and "Endpoint = 198.51.100.1:51820" in conf
    assert (folder / "wg.key").stat().st_mode & 0o777 == 0o600
    assert (state_dir / "trust" / "operator.pub").read_text().strip() == public_b64(OPERATOR)
    assert hub.refusals == []


def test_matrix_section_writes_the_device_agent_config(hub: FakeHub, state_dir: Path) -> None:
    from meshagents.apps.device_agent.config import load

    hub.mode = "matrix"
    out = call("enrollment_submit", caller="tests", token=token(hub.url))
    path = Path(out["agent_config"])
    assert path == state_dir / "device_agent" / "config.json" and path.stat().st_mode & 0o777 == 0o600
    cfg = load(path)
    assert cfg.device_id == "home-wsl" and cfg.matrix_password == "pw" and cfg.bot_users == ("@bot:hub",)
    assert cfg.hub_url == "http://10.42.0.1:8000" and cfg.operator_key == public_b64(OPERATOR)
    assert json.loads(cfg.manifest_path.read_text())["device_id"] == "home-wsl"
    assert "pw" not in (state_dir / "enrollment" / "enrollment.json").read_text()
    # on the wire: neither the Matrix password nor the preshared key, only a sealed box
    wire = json.dumps(hub.sent)
    assert '"pw"' not in wire and "P" * 43 not in wire and hub.sent[0]["sealed"]["box"]
    assert "PresharedKey = " + "P" * 43 + "=" in (state_dir / "enrollment" / "client.conf").read_text()


@pytest.mark.parametrize(
    ("mode", "code"),
    [("rogue", "manifest_invalid_signature"), ("other_key", "manifest_mismatch"),
     ("wrong_seal", "enroll_sealed_invalid")],
)
def test_bad_manifest_installs_nothing_and_tells_the_hub(
    hub: FakeHub, state_dir: Path, mode: str, code: str
) -> None:
    hub.mode = mode
    compact = token(hub.url)
    with pytest.raises(FnError) as exc:
        call("enrollment_submit", caller="tests", token=compact)
    assert exc.value.code == code and exc.value.details["reported_to_hub"] is True
    assert hub.refusals == [{"token": compact, "reason": code}]
    folder = state_dir / "enrollment"
    assert not (folder / "manifest.json").exists() and not (folder / "client.conf").exists()
    assert not (state_dir / "trust" / "operator.pub").exists()


def test_hub_errors_and_bad_tokens(hub: FakeHub, state_dir: Path) -> None:
    hub.mode = "expired"
    with pytest.raises(FnError) as exc:
        call("enrollment_submit", caller="tests", token=token(hub.url))
    assert exc.value.code == "token_expired" and exc.value.details["status"] == 401
    good = token(hub.url)
    head, payload, sig = good.split(".")
    forged = ".".join([head, payload, sig[:-4] + ("AAAA" if sig[-4:] != "AAAA" else "BBBB")])
    with pytest.raises(FnError) as exc:
        call("enrollment_submit", caller="tests", token=forged)
    assert exc.value.code == "token_invalid"
    hub.mode = "good"
    call("enrollment_submit", caller="tests", token=good)
    with pytest.raises(FnError) as exc:  # this device now trusts OPERATOR only
        call("enrollment_submit", caller="tests", token=token(hub.url, SigningKey.generate()))
    assert exc.value.code == "operator_key_mismatch"


def test_an_unreachable_hub_is_found_before_the_token_is_spent(hub: FakeHub, state_dir: Path) -> None:
    good = token(hub.url)
    hub.mode = "down"
    with pytest.raises(FnError) as exc:
        call("enrollment_submit", caller="tests", token=good)
    assert exc.value.code == "hub_unreachable" and "token was not used" in exc.value.message
    assert hub.enroll_posts == 0
    with pytest.raises(FnError) as exc:  # nothing listens there at all
        call("enrollment_submit", caller="tests", token=good, hub_url="http://127.0.0.1:9")
    assert exc.value.code == "hub_unreachable"
    hub.mode = "good"  # the same token still enrolls
    assert call("enrollment_submit", caller="tests", token=good)["device_id"] == "home-wsl"
    assert hub.enroll_posts == 1
