"""The hub on a real mesh: enrollment by pipeline, token rules, revoke + SSE, public surface, audit."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from nacl.signing import SigningKey

from meshagents.trust.audit import AuditLog
from tests.testbed.hub_rig import OPERATOR_PORT, PUBLIC, PUBLIC_PORT, HubRig, in_netns

pytestmark = [pytest.mark.integration, pytest.mark.root]


BAD_KEYS = {"wg_public_key": "A" * 43 + "=", "device_key": "B" * 43 + "="}


def enrolled(rig: HubRig, profile: str = "minimal") -> tuple[Any, dict[str, Any]]:
    dev = rig.new_device()
    proc = rig.enroll(dev, rig.token(dev.name, profile=profile))
    assert proc.returncode == 0, proc.stderr
    return dev, json.loads(proc.stdout)


def test_enroll_device_pipeline(hub_rig: HubRig) -> None:
    dev, out = enrolled(hub_rig, profile="workstation")
    assert out["device_id"] == dev.name
    assert out["address"].startswith("10.42.0.")
    assert "shell.exec.ls" in out["capabilities"]
    assert hub_rig.mesh.ping(dev, "10.42.0.1")
    health = in_netns(dev.netns, httpx.get, f"http://10.42.0.1:{OPERATOR_PORT}/healthz", timeout=5)
    assert health.json()["listener"] == "operator"
    manifest = json.loads(Path(out["manifest_file"]).read_text())
    assert manifest["approvers"] == ["@operator:hub.test"] and manifest["controllers"]
    peers = hub_rig.operator("GET", "/api/peers").json()["peers"]
    mine = [p for p in peers if p["name"] == dev.name]
    assert mine and mine[0]["enrolled"] and mine[0]["profile"] == "workstation"
    # the device's private keys never left it: the hub holds no copy
    private = Path(out["wg_private_key_file"]).read_text().strip()
    assert private not in hub_rig.log_text()
    # a second enrollment of the same name is a conflict, not a 500
    again = hub_rig.public(
        "POST",
        "/enroll",
        json={
            "token": hub_rig.token(dev.name),
            "wg_public_key": "A" * 43 + "=",
            "device_key": "B" * 43 + "=",
        },
    )
    assert again.status_code == 409 and again.json()["error"] == "device_exists"


def test_reenroll_after_removal(hub_rig: HubRig) -> None:
    dev, first = enrolled(hub_rig)
    assert hub_rig.operator("DELETE", f"/api/peers/{dev.name}").status_code == 200
    assert not hub_rig.mesh.ping(dev, "10.42.0.1")
    proc = hub_rig.enroll(dev, hub_rig.token(dev.name))  # same device, same keys, a new token
    assert proc.returncode == 0, proc.stderr
    again = json.loads(proc.stdout)
    assert again["address"] == first["address"] and again["serial"] == first["serial"] + 1
    assert hub_rig.mesh.ping(dev, "10.42.0.1")


def test_expired_token(hub_rig: HubRig) -> None:
    dev = hub_rig.new_device()
    token = hub_rig.token(dev.name, ttl_s=1)
    time.sleep(3)
    proc = hub_rig.enroll(dev, token)
    assert proc.returncode != 0
    assert "token_expired" in proc.stderr
    assert not hub_rig.device_has_interface(dev)
    raw = hub_rig.public(
        "POST",
        "/enroll",
        json={"token": token, **BAD_KEYS},
    )
    assert raw.status_code == 401 and raw.json()["error"] == "token_expired"
    # /enroll/refused needs a live token too: an old token cannot take a peer back
    refused = hub_rig.public("POST", "/enroll/refused", json={"token": token})
    assert refused.status_code == 401 and refused.json()["error"] == "token_expired"
    live = hub_rig.public("POST", "/enroll/refused", json={"token": hub_rig.token(dev.name)})
    assert live.status_code == 404 and live.json()["error"] == "enrollment_unknown"


def test_reused_token(hub_rig: HubRig) -> None:
    other = hub_rig.new_device()
    token = hub_rig.token(other.name)
    assert hub_rig.enroll(other, token).returncode == 0
    third = hub_rig.new_device()
    proc = hub_rig.enroll(third, token)
    assert proc.returncode != 0 and "token_used" in proc.stderr
    assert not hub_rig.device_has_interface(third)


def test_concurrent_enrollments_one_token(hub_rig: HubRig) -> None:
    token = hub_rig.token("race-" + hub_rig.mesh.suffix)
    keys = [(SigningKey.generate(), SigningKey.generate()) for _ in range(4)]

    def attempt(i: int) -> httpx.Response:
        from meshagents.trust.signing import public_b64
        from meshagents.wg.hub import public_of

        wg_pub = public_of(public_b64(keys[i][0]))  # any 32 bytes make a valid X25519 private key
        return hub_rig.public(
            "POST",
            "/enroll",
            json={"token": token, "wg_public_key": wg_pub, "device_key": public_b64(keys[i][1])},
        )

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(attempt, range(4)))
    codes = sorted(r.status_code for r in results)
    assert codes == [200, 401, 401, 401], [r.text for r in results]
    assert {r.json()["error"] for r in results if r.status_code == 401} == {"token_used"}


def test_bad_input_is_422_never_500(hub_rig: HubRig) -> None:
    cases: list[Any] = [
        {},
        {"token": "x", "wg_public_key": "short", "device_key": "B" * 43 + "="},
        {"token": "", "wg_public_key": "A" * 43 + "=", "device_key": "B" * 43 + "="},
        [1, 2],
    ]
    for body in cases:
        r = hub_rig.public("POST", "/enroll", json=body)
        assert r.status_code == 422, (body, r.text)
        assert r.json()["fields"]
    r = hub_rig.public("POST", "/enroll", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422
    bogus = hub_rig.public(
        "POST",
        "/enroll",
        json={"token": "mat1.AAAA.BBBB", **BAD_KEYS},
    )
    assert bogus.status_code == 401 and bogus.json()["error"] == "token_invalid"


def test_revoke_through_api(hub_rig: HubRig) -> None:
    dev, _out = enrolled(hub_rig)
    events: list[dict[str, Any]] = []
    ready = threading.Event()

    def listen() -> None:
        headers = {"Authorization": f"Bearer {hub_rig.api_token}"}
        url = f"http://127.0.0.1:{OPERATOR_PORT}/api/events"
        with httpx.stream("GET", url, headers=headers, timeout=20) as resp:
            ready.set()
            for line in resp.iter_lines():
                if line.startswith("data:"):
                    ev = json.loads(line[5:])
                    events.append(ev)
                    # until both the revocation and a periodic update have come (the
                    # first poll may land after a fast revoke)
                    kinds = {e["type"] for e in events}
                    if {"peer_revoked", "peer_stats"} <= kinds:
                        return

    t = threading.Thread(target=in_netns, args=(hub_rig.hub_ns, listen), daemon=True)
    t.start()
    assert ready.wait(10)
    time.sleep(0.3)
    t0 = time.monotonic()
    r = hub_rig.operator("POST", f"/api/peers/{dev.name}/revoke")
    assert r.status_code == 200, r.text
    while time.monotonic() - t0 < 5:
        status = hub_rig.mesh.call("wg_status", **hub_rig.mesh.hub_args)
        if all(p["public_key"] != r.json()["public_key"] for p in status["peers"]):
            break
        time.sleep(0.05)
    gone_s = time.monotonic() - t0
    assert gone_s < 5
    assert not hub_rig.mesh.ping(dev, "10.42.0.1")
    t.join(10)
    kinds = [e["type"] for e in events]
    assert "peer_revoked" in kinds
    assert any(e["type"] == "peer_stats" for e in events)  # the periodic updates flow too
    # revoked for good: the same name cannot come back
    again = hub_rig.operator(
        "POST", "/api/peers", json={"public_key": r.json()["public_key"], "name": dev.name}
    )
    assert again.status_code == 409 and again.json()["error"] == "peer_revoked"
    assert hub_rig.operator("GET", "/api/peers", auth=False).status_code == 401


def test_internet_sees_only_enroll(hub_rig: HubRig) -> None:
    inet = hub_rig.internet
    assert hub_rig.public("GET", "/healthz").json()["listener"] == "public"
    r = hub_rig.public("POST", "/enroll", json={})
    assert r.status_code == 422  # /enroll answers
    assert hub_rig.public("GET", "/api/peers").status_code == 404  # no such route on the public socket

    def refused(url: str) -> bool:
        try:
            httpx.get(url, timeout=1)
        except httpx.HTTPError:
            return True
        return False

    for url in (
        f"http://{PUBLIC}:{OPERATOR_PORT}/healthz",
        f"http://{PUBLIC}:8008/",
        f"http://{PUBLIC}:8080/",
        f"http://10.42.0.1:{OPERATOR_PORT}/healthz",  # routed via the hub: dropped by nftables
    ):
        assert in_netns(inet, refused, url), url
    assert (
        in_netns(inet, lambda: httpx.get(f"http://{PUBLIC}:{PUBLIC_PORT}/healthz", timeout=2).status_code)
        == 200
    )


def test_audit_ingest(hub_rig: HubRig, tmp_path: Path) -> None:
    from meshagents.trust.keystore import DEVICE_KEY, FileKeyStore, load_signing_key

    dev, _out = enrolled(hub_rig)
    key = load_signing_key(DEVICE_KEY, FileKeyStore(dev.state / "keys"))
    log = AuditLog(tmp_path / "audit.sqlite", device_id=dev.name)
    for i in range(3):
        log.append_intent(f"r{i}", "shell.exec.uptime", {"argv": ["uptime"]})
        log.append_outcome(f"r{i}", "shell.exec.uptime", "ok")
    entries = [e.model_dump(mode="json") for e in log.entries()]
    cp = log.checkpoint(key).model_dump(mode="json")
    url = f"http://10.42.0.1:{OPERATOR_PORT}/api/audit/{dev.name}"

    def post(body: dict[str, Any]) -> httpx.Response:
        return in_netns(dev.netns, httpx.post, url, json=body, timeout=10)

    first = post({"entries": entries[:4], "checkpoint": _cp_at(log, key, 4)})
    assert first.status_code == 200 and first.json()["head_seq"] == 4, first.text
    again = post({"entries": entries, "checkpoint": cp})  # overlaps what the hub has: idempotent
    assert again.status_code == 200 and again.json()["head_seq"] == 6
    assert post({"entries": entries, "checkpoint": cp}).json()["head_seq"] == 6
    # a tampered entry (beyond the hub's head) breaks the chain
    log.append_event("system.boot", "ok")
    more = [e.model_dump(mode="json") for e in log.entries()]
    cp7 = log.checkpoint(key).model_dump(mode="json")
    tampered = dict(more[6], detail="edited")
    bad = post({"entries": [tampered], "checkpoint": cp7})
    assert bad.status_code == 409 and bad.json()["error"] == "audit_chain_broken"
    assert bad.json()["expected_seq"] == 7
    gap = post({"entries": [], "checkpoint": cp7})
    assert gap.status_code == 409
    rewritten = dict(more[2], status="edited")
    assert post({"entries": [rewritten], "checkpoint": cp7}).status_code in (409, 422)
    forged = post({"entries": more[6:], "checkpoint": dict(cp7, signature=cp["signature"])})
    assert forged.status_code == 401
    assert post({"entries": more[6:], "checkpoint": cp7}).status_code == 200
    view = hub_rig.operator("GET", f"/api/audit/{dev.name}").json()
    assert view["chain"]["ok"] and len(view["entries"]) == 7


def _cp_at(log: AuditLog, key: SigningKey, seq: int) -> dict[str, Any]:
    """A checkpoint of an earlier head (what a device shipping in two batches sends)."""
    from meshagents.trust.signing import TYPE_CHECKPOINT, public_b64, sign_payload

    entry = log.entries()[seq - 1]
    body: dict[str, Any] = {
        "type": TYPE_CHECKPOINT,
        "device_id": log.device_id,
        "seq": seq,
        "head_hash": entry.hash,
        "created_at": int(time.time()),
        "device_key": public_b64(key),
    }
    body["signature"] = sign_payload(body, key, TYPE_CHECKPOINT)
    return body


def _chunked_upload(total: int, chunk: int = 65536) -> tuple[int, int]:
    """POST a chunked body of ``total`` bytes to /enroll over a raw socket, stopping as
    soon as the hub answers; (HTTP status, bytes of body sent before that)."""
    import select
    import socket

    s = socket.create_connection((PUBLIC, PUBLIC_PORT), timeout=15)
    s.sendall(
        b"POST /enroll HTTP/1.1\r\nHost: hub\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
    )
    piece = f"{chunk:x}\r\n".encode() + b" " * chunk + b"\r\n"
    sent = 0
    answer = b""
    try:
        while sent < total:
            readable, _, _ = select.select([s], [], [], 0)
            if readable:
                break
            s.sendall(piece)
            sent += chunk
        else:
            s.sendall(b"0\r\n\r\n")
        while b"\r\n" not in answer:
            data = s.recv(4096)
            if not data:
                break
            answer += data
    except (BrokenPipeError, ConnectionResetError):
        with contextlib.suppress(OSError):
            answer += s.recv(4096)
    finally:
        s.close()
    status = int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else 0
    return status, sent


def test_chunked_body_is_capped_while_streaming(hub_rig: HubRig) -> None:
    """A 24 MiB chunked body (no Content-Length) is refused with 413 once the 8 MiB cap is
    passed: the hub never reads it whole."""
    total = 24 * 1024 * 1024
    status, sent = in_netns(hub_rig.internet, _chunked_upload, total)
    assert status == 413, (status, sent)
    assert sent < total  # the answer came before the client had sent everything
