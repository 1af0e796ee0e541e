"""operator_key_ship: post a rotation statement with each re-signed manifest in its device room."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from meshagents.runtime.catalog import function


@function(id="operator_key_ship", group="keys", requires=["matrix", "network"])
def operator_key_ship(
    manifests: list[Path], statement: Path | None = None, credentials: Path | None = None
) -> dict[str, Any]:
    """Send `org.meshagents.rotation` ({statement, manifest}) to `#dev-<name>` for each manifest file.

    The statement is the last one in this machine's `trust/rotations.json` unless
    `statement` names a JSON file. Both are checked before anything is sent: the
    statement's two signatures, and each manifest against the statement's new key.
    The device verifies them again itself (docs/protocol.md §8), so the sending account
    needs no special trust.

    Args:
        manifests: a device's manifest re-signed with the new operator key, as a JSON file (repeat the
            option, one per device).
        statement: the rotation statement as a JSON file; default: the last one in this machine's
            trust/rotations.json (what operator_key_rotate wrote).
        credentials: credentials.json of another Matrix account to send as (homeserver, user_id,
            password); default: the Matrix settings' actor account.
    """
    from meshagents.bus import ROTATION_EVENT, RotationEvent
    from meshagents.errors import FnError
    from meshagents.matrix.client import MatrixClient
    from meshagents.matrix.ops import run_as
    from meshagents.matrix.rooms import alias_localpart, full_alias
    from meshagents.matrix.settings import load_settings
    from meshagents.trust import manifest as manifest_mod
    from meshagents.trust.canonical import loads_strict
    from meshagents.trust.rotation import RotationLog, verify_statement

    if statement is not None:
        st = verify_statement(loads_strict(statement.read_bytes()))
    else:
        known = RotationLog().load()
        if not known:
            raise FnError("rotation_invalid", f"no rotation statement in {RotationLog().path}")
        st = known[-1]
    payload = st.model_dump(mode="json")
    settings = load_settings()
    sends: list[tuple[str, str, dict[str, Any]]] = []
    for path in manifests:
        signed = manifest_mod.verify(manifest_mod.load_file(path), st.new_key)
        room = full_alias(alias_localpart("dev", signed.device_name), settings.server_name)
        content = RotationEvent(payload, signed.model_dump(mode="json")).to_content()
        sends.append((signed.device_id, room, content))

    async def work(client: MatrixClient) -> list[dict[str, Any]]:
        out = []
        for device_id, room, content in sends:
            room_id = await client.resolve(room)
            if room_id not in client.nio_client.rooms:
                await client.join(room_id)
            event_id = await client.send_custom(room_id, ROTATION_EVENT, content)
            out.append({"device_id": device_id, "room": room, "event_id": event_id})
        return out

    return {"new_key": st.new_key, "sent": run_as(settings, work, credentials=credentials)}
