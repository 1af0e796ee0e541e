"""The hub's Matrix side: a device's account and room at enrollment, the approvers and
the bot the manifest names, and taking a revoked device out of its room.

The mesh works without Matrix: every failure here is logged and reported in the answer
or the event, never raised into an enrollment or a revocation.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
from typing import Any

from meshagents.apps.wg_hub.context import HubContext
from meshagents.apps.wg_hub.issue import matrix_user
from meshagents.errors import FnError
from meshagents.fsutil import write_private
from meshagents.runtime.api import call

log = logging.getLogger("wg_hub")


class MatrixService:
    """Accounts, rooms and kicks (only when the hub config has a homeserver)."""

    def __init__(self, ctx: HubContext) -> None:
        self.ctx = ctx

    def approvers(self) -> list[str]:
        """The config's approvers; with a homeserver and none configured, its operators."""
        if self.ctx.cfg.approvers or self.ctx.cfg.matrix is None:
            return list(self.ctx.cfg.approvers)
        from meshagents.matrix.settings import load_settings

        try:
            return list(load_settings().operators)
        except FnError as exc:
            log.error("no approvers: %s", exc)
            return []

    def bot_users(self) -> list[str]:
        """The bot's Matrix id (from the Matrix settings), which the manifest names so the
        device trusts approval requests from it alone."""
        if self.ctx.cfg.matrix is None:
            return []
        from meshagents.matrix.settings import load_settings

        try:
            bot = load_settings().bot
        except FnError as exc:
            log.error("no bot user for the manifest: %s", exc)
            return []
        return [bot] if bot else []

    def provision(self, name: str) -> dict[str, Any] | None:
        """The device's Matrix account and room, when the hub config has a homeserver."""
        m = self.ctx.cfg.matrix
        if m is None:
            return None
        creds = self.ctx.cfg.hub_state / "matrix" / f"{name}.json"
        try:
            account = call(
                "matrix_account_provision", caller="wg_hub", device_name=name, credentials_path=creds
            )
            room = call("matrix_room_for_device", caller="wg_hub", device_name=name)
            secret = json.loads(creds.read_text(encoding="utf-8"))
        except (FnError, OSError, ValueError) as exc:
            # The mesh works without Matrix; the operator sees why in the log and the answer.
            log.error("matrix provisioning for %s failed: %s", name, exc)
            return {"error": getattr(exc, "code", "matrix_error"), "message": str(exc)}
        bot: str | None = None
        try:
            from meshagents.matrix.settings import load_settings

            bot = load_settings().bot
        except FnError as exc:
            log.error("matrix settings: %s", exc)
        return {
            "homeserver_url": m.homeserver_url,
            "user_id": account.get("user_id") or secret.get("user_id"),
            "password": secret.get("password"),
            "room_alias": room.get("alias"),
            "room_id": room.get("room_id"),
            "approvals_room": f"#operator-approvals:{m.server_name}",
            "bot_users": [bot] if bot else [],
        }

    def kick_in_background(self, name: str) -> None:
        """Off the caller's path (a Matrix login and kick take hundreds of ms): the outcome
        is a ``matrix_kicked`` event and a hub_log row."""
        threading.Thread(target=self._kick_later, args=(name,), name=f"kick-{name}", daemon=True).start()

    def _kick_later(self, name: str) -> None:
        # The logout (every session of the device's account ends) and the kick run at once:
        # each is a login and a call or two, and the revocation's Matrix side aims at <= 1 s.
        logout: dict[str, Any] = {}
        t = threading.Thread(target=lambda: logout.update(self._logout(name)), name=f"logout-{name}",
                             daemon=True)  # fmt: skip
        t.start()
        result = self._matrix_kick(name)
        t.join(30)
        if result is not None and logout:
            result = {**result, "logout": logout}
        self.ctx.store.log("matrix_kicked", name, json.dumps(result, sort_keys=True))
        self.ctx.bus.publish("matrix_kicked", {"device_id": name, "result": result})

    def _logout(self, name: str) -> dict[str, Any]:
        """The device's account locked out: every Matrix session ended and its password
        changed (the hub made it; the new one is kept in the hub's state, 0600), so the
        revoked device's agent can neither sync nor log in again."""
        m = self.ctx.cfg.matrix
        creds = self.ctx.cfg.hub_state / "matrix" / f"{name}.json"
        if m is None or not creds.exists():
            return {}
        from meshagents.matrix.admin import lock_out

        try:
            secret = json.loads(creds.read_text(encoding="utf-8"))
            user = str(secret.get("user_id") or matrix_user(name, m.server_name))
            new_password = secrets.token_urlsafe(32)
            lock_out(m.homeserver_url, user, str(secret["password"]), new_password)
            write_private(creds, {**secret, "password": new_password})
        except (FnError, OSError, ValueError, KeyError) as exc:
            log.error("could not lock %s out of Matrix: %s", name, exc)
            return {"logged_out": False, "error": getattr(exc, "code", type(exc).__name__)}
        return {"logged_out": True, "password_changed": True}

    def _matrix_kick(self, name: str) -> dict[str, Any] | None:
        m = self.ctx.cfg.matrix
        if m is None:
            return None
        try:
            kicked: dict[str, Any] = call(
                "matrix_room_kick",
                caller="wg_hub",
                room=f"#{m.room_alias_prefix}{name}:{m.server_name}",
                user=matrix_user(name, m.server_name),
                reason="device revoked",
            )
        except FnError as exc:
            log.error("could not remove %s from its Matrix room: %s", name, exc)
            return {"error": exc.code, "message": exc.message}
        return kicked
