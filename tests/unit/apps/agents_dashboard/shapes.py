"""Recorded JSON shapes of the hub's operator API and the bot's control API (as of wave 2).

Hub: ``GET /api/peers`` (meshagents/apps/wg_hub/enroll.py ``Hub.peers``), the ``peer_stats`` event
(meshagents/apps/wg_hub/events.py), ``GET /api/audit/{id}`` (``{"entries", "chain"}``, the chain
being meshagents.trust.audit.ChainReport). Bot: the control API contract
(docs/dashboard.md). ``manifest`` in a peer is what the dashboard uses when the hub
sends it (see docs/dashboard.md, "what the hub could add").
"""

from __future__ import annotations

from typing import Any

NOW = 1_800_000_000.0
KEY_A = "A" * 42 + "A="
KEY_B = "B" * 42 + "A="
KEY_C = "C" * 42 + "A="
KEY_D = "D" * 42 + "A="


def manifest(name: str, caps: list[dict[str, Any]], serial: int = 3) -> dict[str, Any]:
    return {
        "type": "meshagents.manifest.v1", "device_id": name, "device_name": name, "device_key": KEY_A,
        "wg_public_key": KEY_A, "mesh_address": "10.42.0.10", "matrix_user": f"@{name}:hub.test",
        "approvers": ["@op:hub.test"], "controllers": [KEY_B], "capabilities": caps, "serial": serial,
        "issued_at": int(NOW) - 100, "expires_at": int(NOW) + 86400 * 30, "operator_key": KEY_C,
        "signature": "sig",
    }  # fmt: skip


def peer(name: str, key: str, address: str, *, status: str = "active", hs: float | None = None,
         rx: int = 0, tx: int = 0, enrolled: bool = True, with_manifest: dict[str, Any] | None = None,
         ) -> dict[str, Any]:  # fmt: skip
    out: dict[str, Any] = {
        "id": name, "name": name, "public_key": key, "address": address, "status": status,
        "live": status == "active", "online": hs is not None and NOW - hs < 180, "latest_handshake": hs,
        "rx_bytes": rx, "tx_bytes": tx, "endpoint": "198.19.1.2:40000" if hs else None,
        "enrolled": enrolled, "profile": "workstation" if enrolled else None,
        "manifest_serial": 3 if enrolled else None,
    }  # fmt: skip
    if with_manifest is not None:
        out["manifest"] = with_manifest
    return out


WS_CAPS = [
    {"name": "shell.exec.ls", "requires_approval": False},
    {"name": "system.reboot", "requires_approval": True},
    {"name": "docker.container.logs", "requires_approval": False, "values": {"container": ["web", "db"]}},
    {"name": "docker.container.list", "requires_approval": False},
]
PEERS: list[dict[str, Any]] = [
    peer("home-wsl", KEY_A, "10.42.0.10", hs=NOW - 20, rx=2048, tx=4096,
         with_manifest=manifest("home-wsl", WS_CAPS)),
    peer("pi", KEY_B, "10.42.0.11", hs=NOW - 600, rx=10, tx=20,
         with_manifest=manifest("pi", [{"name": "shell.exec.ls", "requires_approval": False}], serial=1)),
    peer("old", KEY_C, "10.42.0.12", status="revoked"),
    peer("cont-web", KEY_D, "10.42.0.13", hs=NOW - 5),
]  # fmt: skip

PEER_STATS = {
    "id": 7, "type": "peer_stats", "ts": NOW + 2,
    "data": {"peer_count": 3, "online_count": 2, "polled_at": NOW + 2,
             "changed": [{"public_key": KEY_A, "name": "home-wsl", "latest_handshake": NOW + 1,
                          "rx_bytes": 2048 + 2048, "tx_bytes": 4096}]},
}  # fmt: skip

APPROVALS: list[dict[str, Any]] = [
    {"approval_id": "ap-old", "request_id": "r0", "device": "home-wsl", "capability": "system.reboot",
     "args_preview": "{}", "requester": "@op:hub.test", "created_at": NOW - 7200, "expires_at": NOW - 3600,
     "request_event_id": "$e0", "room_id": "!ap:hub.test", "state": "expired"},
    {"approval_id": "ap-1", "request_id": "r1", "device": "home-wsl", "capability": "system.reboot",
     "args_preview": "{}", "requester": "@op:hub.test", "created_at": NOW - 95, "expires_at": NOW + 3505,
     "request_event_id": "$e1:hub.test", "room_id": "!ap:hub.test", "state": "pending"},
]  # fmt: skip

BOT_DEVICES: list[dict[str, Any]] = [
    {"device": "home-wsl", "room_id": "!r1:hub.test", "room_alias": "#dev-home-wsl:hub.test",
     "agent_state": "ok", "last_status_ts": NOW - 30},
    {"device": "pi", "room_id": "!r2:hub.test", "room_alias": "#dev-pi:hub.test",
     "agent_state": "degraded", "last_status_ts": NOW - 900},
]  # fmt: skip

AUDIT_OK: dict[str, Any] = {
    "entries": [
        {"seq": i, "kind": "intent" if i % 2 else "outcome", "ts_ms": int(NOW * 1000) + i,
         "request_id": f"r{i}", "capability": "shell.exec.ls", "args_digest": "", "status": "ok",
         "approval": None, "detail": "",
         "prev_hash": "0" * 64, "hash": "1" * 64}
        for i in range(1, 31)
    ],
    "chain": {"ok": True, "entries": 30, "head_seq": 30, "head_hash": "1" * 64, "first_bad_seq": None,
              "problem": None, "reason": "", "checkpoints": 2},
}  # fmt: skip
AUDIT_BROKEN = {
    "entries": AUDIT_OK["entries"][:5],
    "chain": {"ok": False, "entries": 5, "head_seq": 1, "head_hash": "1" * 64, "first_bad_seq": 2,
              "problem": "hash_mismatch", "reason": "seq 2 content does not match its hash",
              "checkpoints": 1},
}  # fmt: skip
