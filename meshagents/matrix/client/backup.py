"""Room keys to the server's key backup, so a session verified later reads our rooms.

Only into a backup whose public key is ours (``key_backup_path``): one made by someone
else (an identity reset) is not ours to write. At most one PUT per sync.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from meshagents.fsutil import read_json
from meshagents.matrix import crosssign, secretstore
from meshagents.matrix.client.session import Session

log = logging.getLogger("meshagents.matrix")


class KeyBackup:
    """What is backed up already and where the backup is (found again after an error)."""

    def __init__(self, key_path: Path) -> None:
        self.key_path = key_path
        self._backed_up: set[tuple[str, str]] = set()  # (room, session id) in the key backup
        self._backup: tuple[str, str] | None = None  # (version, public key) we can write to
        self._checked = 0.0

    async def upload(self, session: Session) -> None:
        """Upload the inbound Megolm sessions not backed up yet."""
        olm = session.client.olm
        if olm is None:
            return
        fresh = [s for s in olm.inbound_group_store if (s.room_id, s.id) not in self._backed_up]
        if not fresh:
            return
        if self._backup is None:
            if time.monotonic() - self._checked < 60:
                return
            self._checked = time.monotonic()
            data = read_json(self.key_path)
            if data is None:
                return
            public = secretstore.backup_public_key(crosssign.b64u_decode(str(data["private_key"])))
            status, version = await session.api("GET", "/_matrix/client/v3/room_keys/version")
            if status != 200 or (version.get("auth_data") or {}).get("public_key") != public:
                return  # no backup, or one made by someone else (a reset): not ours to write
            self._backup = (str(version["version"]), public)
        ver, public = self._backup
        rooms: dict[str, Any] = {}
        for sess in fresh:
            index = sess.first_known_index
            session_data = {
                "algorithm": "m.megolm.v1.aes-sha2", "sender_key": sess.sender_key,
                "session_key": sess.export_session(index), "sender_claimed_keys": {"ed25519": sess.ed25519},
                "forwarding_curve25519_key_chain": list(sess.forwarding_chain),
            }  # fmt: skip
            rooms.setdefault(sess.room_id, {"sessions": {}})["sessions"][sess.id] = {
                "first_message_index": index, "forwarded_count": len(sess.forwarding_chain),
                "is_verified": False,
                "session_data": secretstore.encrypt_backup_session(public, session_data),
            }  # fmt: skip
        status, answer = await session.api(
            "PUT", f"/_matrix/client/v3/room_keys/keys?version={ver}", {"rooms": rooms}
        )
        if status == 200:
            self._backed_up.update((s.room_id, s.id) for s in fresh)
        else:
            self._backup = None  # e.g. M_WRONG_ROOM_KEYS_VERSION: look again later
            user = session.config.user_id
            log.warning("%s: key backup answered %s %s", user, status, answer.get("errcode"))
