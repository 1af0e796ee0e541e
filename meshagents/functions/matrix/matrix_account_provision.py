"""matrix_account_provision: create a device's Matrix user, credentials kept in that device's state dir."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from meshagents.runtime.catalog import function


@function(id="matrix_account_provision", group="matrix", requires=["matrix"])
def matrix_account_provision(
    device_name: str, kind: Literal["dev", "cont"] = "dev", credentials_path: Path | None = None
) -> dict[str, Any]:
    """Create the Matrix user `@<kind>-<device_name>` with a random password (idempotent).

    The password goes to `credentials_path` (default: the device's state directory,
    `devices/<name>/matrix/credentials.json`, mode 0600) and is never printed.
    Needs `registration_shared_secret_file` in the Matrix settings.

    Args:
        device_name: the device's name: 1-63 of a-z 0-9 . _ = -, starting with a letter or digit.
        kind: dev for a machine, cont for a deep-mode container: the user is @<kind>-<device_name>.
        credentials_path: where to keep the account's credentials.json (0600); default:
            <state>/devices/<device_name>/matrix/credentials.json.
    """
    from meshagents.matrix.ops import provision_account
    from meshagents.matrix.rooms import alias_localpart
    from meshagents.matrix.settings import device_matrix_dir, load_settings

    settings = load_settings()
    localpart = alias_localpart(kind, device_name)
    path = credentials_path or device_matrix_dir(device_name) / "credentials.json"
    return provision_account(settings, localpart, path)
