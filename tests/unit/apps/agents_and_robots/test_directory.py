"""The device directory: signed manifest files, the hub's peer rows, revoked marks."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from nacl.signing import SigningKey

from meshagents.apps.agents_and_robots.directory import (
    DeviceRecord,
    FileDirectory,
    HubDirectory,
    LocalHub,
    records_from_peers,
)
from meshagents.errors import FnError
from meshagents.trust import manifest as trust_manifest
from meshagents.trust.signing import public_b64

pytestmark = pytest.mark.unit

OPERATOR = SigningKey(b"\x01" * 32)
OTHER = SigningKey(b"\x02" * 32)


def signed(name: str, *, key: SigningKey = OPERATOR, serial: int = 1, approvers: list[str] | None = None
           ) -> dict[str, Any]:
    now = int(time.time())
    body = {
        "type": "meshagents.manifest.v1", "device_id": name, "device_name": name,
        "device_key": public_b64(SigningKey(b"\x03" * 32)),
        "wg_public_key": public_b64(SigningKey(b"\x04" * 32)),
        "mesh_address": "10.42.0.10", "matrix_user": f"@{name}:hub", "approvers": approvers or ["@op:hub"],
        "controllers": [public_b64(SigningKey(b"\x05" * 32))],
        "capabilities": [{"name": "shell.exec.ls", "executables": ["/usr/bin/ls"],
                          "path_prefixes": ["/tmp"]}],
        "serial": serial, "issued_at": now, "expires_at": now + 3600, "operator_key": public_b64(key),
    }
    return trust_manifest.sign(body, key).model_dump(mode="json")


def write(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data))


async def test_file_directory_checks_signatures_and_reads_revoked_marks(tmp_path: Path) -> None:
    write(tmp_path / "a.json", signed("a"))
    write(tmp_path / "rogue.json", signed("rogue", key=OTHER))  # not the operator's: skipped
    (tmp_path / "broken.json").write_text("{not json")
    tampered = signed("t")
    tampered["approvers"] = ["@eve:hub"]
    write(tmp_path / "t.json", tampered)
    d = FileDirectory(tmp_path, operator_key=public_b64(OPERATOR))
    await d.refresh()
    devices = d.devices()
    assert set(devices) == {"a"}
    info = devices["a"].info()
    assert info.operators == frozenset({"@op:hub"}) and "shell.exec.ls" in info.view and not info.revoked
    assert devices["a"].matrix_user == "@a:hub" and devices["a"].device_id == "a"

    await LocalHub(tmp_path).revoke("a")
    await d.refresh()
    assert d.devices()["a"].revoked and d.devices()["a"].info().revoked


async def test_file_directory_higher_serial_wins_and_mark_revoked(tmp_path: Path) -> None:
    write(tmp_path / "a-1.json", signed("a", serial=1, approvers=["@old:hub"]))
    write(tmp_path / "a-2.json", signed("a", serial=2, approvers=["@new:hub"]))
    d = FileDirectory(tmp_path)  # no operator key: parsed, not checked (documented)
    await d.refresh()
    assert d.devices()["a"].info().operators == frozenset({"@new:hub"})
    d.mark_revoked("a")
    assert d.devices()["a"].revoked
    await d.refresh()
    assert d.devices()["a"].revoked  # kept until the files say so too


async def test_missing_directory_is_empty(tmp_path: Path) -> None:
    d = FileDirectory(tmp_path / "nope")
    await d.refresh()
    assert d.devices() == {}


def test_records_from_peers_merges_hub_state() -> None:
    files = {"a": DeviceRecord("a", trust_manifest.verify(signed("a"), public_b64(OPERATOR)))}
    peers: list[dict[str, Any]] = [
        {"name": "a", "status": "active", "latest_handshake": 1_800_000_000},
        {"name": "b", "status": "revoked", "latest_handshake": None, "manifest": signed("b")},
        {"name": "c", "status": "active", "latest_handshake": 0, "manifest": signed("c", key=OTHER)},
        {"id": "", "name": ""},
        {"name": "d", "latest_handshake": True},
    ]
    out = records_from_peers(peers, files, public_b64(OPERATOR))
    assert out["a"].manifest is not None and out["a"].last_handshake == 1_800_000_000.0
    assert out["a"].handshake_known and not out["a"].revoked
    assert out["b"].revoked and out["b"].manifest is not None and out["b"].last_handshake is None
    assert out["c"].manifest is None and out["c"].last_handshake is None  # rogue manifest refused
    assert out["d"].last_handshake is None and out["d"].info().operators == frozenset()
    assert set(out) == {"a", "b", "c", "d"}


class FakeHub:
    def __init__(self) -> None:
        self.peers_rows: list[dict[str, Any]] = [{"name": "a", "status": "active", "latest_handshake": 5}]
        self.fail = False

    async def peers(self) -> list[dict[str, Any]]:
        if self.fail:
            raise FnError("hub_unreachable", "down")
        return self.peers_rows

    async def revoke(self, device: str) -> dict[str, Any]:
        return {}


async def test_hub_directory_keeps_state_while_the_hub_is_down(tmp_path: Path) -> None:
    write(tmp_path / "a.json", signed("a"))
    hub = FakeHub()
    d = HubDirectory(hub, fallback=FileDirectory(tmp_path), operator_key=public_b64(OPERATOR))
    await d.refresh()
    assert d.devices()["a"].manifest is not None and d.last_error is None
    d.mark_revoked("a")
    hub.fail = True
    await d.refresh()
    assert d.last_error == "hub_unreachable: down" and d.devices()["a"].revoked
    hub.fail = False
    await d.refresh()
    assert d.devices()["a"].revoked and d.last_error is None  # the bot's own revoke is not forgotten


def test_a_record_builds_its_view_once_and_a_new_manifest_is_seen() -> None:
    rec = DeviceRecord("a", trust_manifest.verify(signed("a"), public_b64(OPERATOR)))
    first = rec.info()
    assert list(first.view) == ["shell.exec.ls"] and first.view["shell.exec.ls"]["path_prefixes"] == ["/tmp"]
    assert rec.info().view is first.view  # not dumped again on the next message
    assert replace(rec, revoked=True).info().revoked
    newer = trust_manifest.verify(signed("a", serial=2, approvers=["@other:hub"]), public_b64(OPERATOR))
    other = replace(rec, manifest=newer).info()
    assert other.view is not first.view and other.operators == frozenset({"@other:hub"})
