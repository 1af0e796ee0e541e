"""matrix_account_provision, matrix_room_for_device and matrix_send_message against the
session Synapse, called through the catalog like any caller would."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from meshagents.errors import FnError
from meshagents.matrix.client import Incoming, MatrixClient
from meshagents.matrix.settings import Credentials, account_dir
from meshagents.runtime.api import call
from tests.testbed.host import ROOT
from tests.testbed.synapse import SynapseServer

pytestmark = pytest.mark.integration


def fn_run(function_id: str, **params: Any) -> Any:
    """``fn run FUNCTION_ID --param value...`` in a process of its own, its JSON result.

    For the calls made while the test's own nio client syncs: nio's store binds its
    peewee models for the whole process, so a second nio client working from a thread
    at the same time can find them unbound (seen once in a random-order run:
    ``ImproperlyConfigured: database attribute does not appear to be set on the model:
    <Model: DeviceKeys>`` in matrix_room_kick)."""
    argv = [sys.executable, "-m", "meshagents.runtime.cli", "run", function_id]
    for key, value in params.items():
        opt = f"--{key.replace('_', '-')}"
        argv += [opt] if value is True else [opt, str(value)]
    proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout)


@pytest.fixture
def matrix_settings(synapse: SynapseServer, state_dir: Path) -> dict[str, str]:
    operator, _ = synapse.new_user("op")
    actor = synapse.configure_state(state_dir, operators=[operator])
    return {"operator": operator, "actor": actor, "suffix": synapse.unique("d")}


def _state(
    synapse: SynapseServer, token: str, room_id: str, event_type: str, state_key: str = ""
) -> dict[str, Any]:
    req = urllib.request.Request(
        f"{synapse.url}/_matrix/client/v3/rooms/{room_id}/state/{event_type}/{urllib.parse.quote(state_key)}",
        headers={"Authorization": f"Bearer {token}"},
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        out: dict[str, Any] = json.loads(r.read())
        return out


async def test_provision_room_and_send(
    synapse: SynapseServer, matrix_settings: dict[str, str], state_dir: Path
) -> None:
    name = matrix_settings["suffix"]
    first = await asyncio.to_thread(call, "matrix_account_provision", device_name=name)
    assert first["created"] and first["user_id"] == f"@dev-{name}:{synapse.server_name}"
    creds_path = Path(first["credentials_path"])
    assert creds_path == state_dir / "devices" / name / "matrix" / "credentials.json"
    assert creds_path.stat().st_mode & 0o777 == 0o600
    again = await asyncio.to_thread(call, "matrix_account_provision", device_name=name)
    assert not again["created"] and again["user_id"] == first["user_id"]
    assert "password" not in json.dumps(first)

    room = await asyncio.to_thread(call, "matrix_room_for_device", device_name=name)
    assert room["created"] and room["alias"] == f"#dev-{name}:{synapse.server_name}"
    assert set(room["invited"]) == {matrix_settings["operator"], first["user_id"]}
    same = await asyncio.to_thread(call, "matrix_room_for_device", device_name=name)
    assert (same["room_id"], same["created"], same["invited"]) == (room["room_id"], False, [])

    token = json.loads(
        (
            account_dir(matrix_settings["actor"][1:].split(":")[0]) / "stores" / "functions" / "session.json"
        ).read_text()
    )["access_token"]
    assert _state(synapse, token, room["room_id"], "m.room.encryption")["algorithm"] == "m.megolm.v1.aes-sha2"
    levels = _state(synapse, token, room["room_id"], "m.room.power_levels")["users"]
    assert levels == {matrix_settings["operator"]: 100, matrix_settings["actor"]: 50, first["user_id"]: 0}

    # The device's own client (on our base) joins and reads what the function sends.
    creds = Credentials.load(creds_path)
    device = MatrixClient(
        creds.client_config(
            creds_path.parent, "agent", accept_invites_from=(matrix_settings["actor"],), sync_timeout_ms=2000
        )
    )
    got: asyncio.Queue[Incoming] = asyncio.Queue()

    async def put(ev: Incoming) -> None:
        await got.put(ev)

    device.on_message(put)
    await device.start()
    try:
        await device.wait_for_member(room["room_id"], device.user_id)
        sent = await asyncio.to_thread(
            fn_run,
            "matrix_send_message",
            room=room["alias"],
            body="uptime",
            notice=True,
            code="up 3 days <load 0.1>",
            language="text",
        )
        assert sent["encrypted"] and sent["room_id"] == room["room_id"]
        ev = await asyncio.wait_for(got.get(), 15)
        assert ev.decrypted and ev.event_id == sent["event_id"]
        assert ev.content["msgtype"] == "m.notice"
        assert ev.content["body"] == "uptime\n```text\nup 3 days <load 0.1>\n```"
        assert ev.content["formatted_body"] == (
            'uptime<pre><code class="language-text">up 3 days &lt;load 0.1&gt;</code></pre>'
        )
        reply = await asyncio.to_thread(
            fn_run, "matrix_send_message", room=room["room_id"], body="ok", reply_to=sent["event_id"]
        )
        ev2 = await asyncio.wait_for(got.get(), 15)
        assert ev2.event_id == reply["event_id"]
        assert ev2.content["m.relates_to"]["m.in_reply_to"]["event_id"] == sent["event_id"]

        # Revocation: the device user is removed from its room (twice is fine).
        for _ in range(2):
            out = await asyncio.to_thread(
                fn_run, "matrix_room_kick", room=room["alias"], user=device.user_id, reason="revoked"
            )
            assert out["room_id"] == room["room_id"]
        members = _state(synapse, token, room["room_id"], "m.room.member", device.user_id)
        assert members["membership"] == "leave"
    finally:
        await device.stop()


async def test_bad_input_is_refused(matrix_settings: dict[str, str]) -> None:
    with pytest.raises(FnError) as err:
        await asyncio.to_thread(call, "matrix_room_for_device", device_name="Bad Name!")
    assert err.value.code == "bad_device_name"
    with pytest.raises(FnError) as err:
        await asyncio.to_thread(call, "matrix_send_message", room="#nope-x:localhost", body="x")
    assert err.value.code == "room_not_found"


async def test_operator_key_ship_posts_the_rotation(
    synapse: SynapseServer, matrix_settings: dict[str, str], tmp_path: Path
) -> None:
    """The statement and each re-signed manifest reach the device's room as one event."""
    from nacl.signing import SigningKey

    from meshagents.bus import ROTATION_EVENT
    from meshagents.trust import manifest as manifest_mod
    from meshagents.trust.rotation import make_statement
    from tests.testbed.trust_keys import Keys, manifest_body

    name = matrix_settings["suffix"]
    account = await asyncio.to_thread(call, "matrix_account_provision", device_name=name)
    room = await asyncio.to_thread(call, "matrix_room_for_device", device_name=name)
    keys, new = Keys(), SigningKey.generate()
    statement = make_statement(keys.operator, new, reason="yearly")
    manifest = manifest_mod.sign(manifest_body(keys, device_name=name, serial=2), new)
    (tmp_path / "st.json").write_text(json.dumps(statement.model_dump(mode="json")))
    (tmp_path / "m.json").write_text(json.dumps(manifest.model_dump(mode="json")))
    stale = manifest_mod.sign(manifest_body(keys, device_name=name), keys.operator)
    (tmp_path / "old.json").write_text(json.dumps(stale.model_dump(mode="json")))
    with pytest.raises(FnError) as err:  # a manifest the new key did not sign is never sent
        await asyncio.to_thread(call, "operator_key_ship", manifests=[tmp_path / "old.json"],
                                statement=tmp_path / "st.json")
    assert err.value.code == "manifest_invalid_signature"

    creds_path = Path(account["credentials_path"])
    creds = Credentials.load(creds_path)
    device = MatrixClient(creds.client_config(
        creds_path.parent, "agent", accept_invites_from=(matrix_settings["actor"],), sync_timeout_ms=2000))
    got: asyncio.Queue[Incoming] = asyncio.Queue()

    async def put(ev: Incoming) -> None:
        await got.put(ev)

    device.on_custom_event(ROTATION_EVENT, put)
    await device.start()
    try:
        await device.wait_for_member(room["room_id"], device.user_id)
        out = await asyncio.to_thread(call, "operator_key_ship", manifests=[tmp_path / "m.json"],
                                      statement=tmp_path / "st.json")
        assert [s["room"] for s in out["sent"]] == [room["alias"]]
        ev = await asyncio.wait_for(got.get(), 15)
        assert ev.decrypted and ev.content["statement"] == statement.model_dump(mode="json")
        assert ev.content["manifest"]["serial"] == 2
    finally:
        await device.stop()
