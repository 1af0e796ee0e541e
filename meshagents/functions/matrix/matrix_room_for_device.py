"""matrix_room_for_device: find or create the encrypted control room of a device or container."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from meshagents.runtime.catalog import function


@function(id="matrix_room_for_device", group="matrix", requires=["matrix", "network"])
def matrix_room_for_device(
    device_name: str,
    kind: Literal["dev", "cont"] = "dev",
    device_user: str | None = None,
    operators: list[str] | None = None,
    bot: str | None = None,
    credentials: Path | None = None,
) -> dict[str, Any]:
    """Find or create `#dev-<name>` (or `#cont-<name>`), encrypted, and invite operator, bot and device.

    Idempotent: an existing room is reused and only missing members are invited.
    Power levels: operators 100, bot 50, device user 0. Defaults come from the Matrix
    settings (`operators`, `bot`; the device user is `@<kind>-<name>:<server_name>`);
    the call acts as the settings' `actor` account unless `credentials` names another.
    Returns the room id, its alias, whether it was created, and who was invited.

    Args:
        device_name: the device's name: 1-63 of a-z 0-9 . _ = -, starting with a letter or digit.
        kind: dev for a machine (#dev-<name>), cont for a deep-mode container (#cont-<name>).
        device_user: Matrix id of the device's account to invite; default: @<kind>-<name>:<server_name>.
        operators: Matrix ids (@user:server) of the operators to invite with power 100; default: the Matrix
            settings' operators.
        bot: Matrix id of the bot to invite with power 50; default: the Matrix settings' bot.
        credentials: credentials.json of another Matrix account to act as (homeserver, user_id, password);
            default: the Matrix settings' actor account.
    """
    from meshagents.matrix.ops import room_for_device, run_as
    from meshagents.matrix.rooms import alias_localpart
    from meshagents.matrix.settings import load_settings

    settings = load_settings()
    user = device_user or f"@{alias_localpart(kind, device_name)}:{settings.server_name}"
    ops = list(operators or settings.operators)  # the CLI passes [] for "not given"
    result = run_as(
        settings,
        lambda client: room_for_device(
            client,
            settings,
            kind=kind,
            name=device_name,
            device_user=user,
            operators=ops,
            bot=bot or settings.bot,
        ),
        credentials=credentials,
    )
    return {
        "room_id": result.room_id,
        "alias": result.alias,
        "created": result.created,
        "invited": result.invited,
    }
