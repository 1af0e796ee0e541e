"""matrix_room_kick: remove a user from a room (device revocation), idempotent."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from meshagents.runtime.catalog import function


@function(id="matrix_room_kick", group="matrix", requires=["matrix", "network"])
def matrix_room_kick(
    room: str, user: str, reason: str | None = None, credentials: Path | None = None
) -> dict[str, Any]:
    """Remove `user` from a room (id or alias), e.g. a revoked device's user from `#dev-<name>`.

    No error when the user is already gone. Acts as the Matrix settings' `actor`
    (which needs power 50, the bot's level) unless `credentials` names another account.

    Args:
        room: the room: an id (!abc:server) or an alias (#dev-name:server).
        user: Matrix id of the user to remove (@dev-name:server).
        reason: reason shown to the room's members; default: none.
        credentials: credentials.json of another Matrix account to act as (homeserver, user_id, password);
            default: the Matrix settings' actor account.
    """
    from meshagents.matrix.client import MatrixClient
    from meshagents.matrix.ops import kick_with_saved_session, run_as
    from meshagents.matrix.settings import load_settings

    settings = load_settings()
    # A revocation's kick: two plain HTTP calls with the acting account's saved session
    # when it has one (a full client start first syncs every room it is in: seconds on a
    # loaded hub, issue 19); the full client otherwise (it saves that session).
    fast = kick_with_saved_session(settings, room, user, reason, credentials=credentials)
    if fast is not None:
        return fast

    async def work(client: MatrixClient) -> dict[str, Any]:
        room_id = await client.resolve(room)
        await client.kick(room_id, user, reason)
        return {"room_id": room_id, "user": user, "removed": True}

    return run_as(settings, work, credentials=credentials)
