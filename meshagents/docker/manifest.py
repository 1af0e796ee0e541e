"""Light mode: the capability entries that map a container into its host's manifest.

The host's device agent then serves ``!docker exec <container> <cmd>`` (and list,
logs) from ``#dev-<host>``. The entries follow the trust layer's ``Capability``
model (``meshagents/trust/models.py``): ``executables`` (absolute paths inside the
container), ``values.container``, ``limits``, ``timeout_s``, ``output_cap_bytes``,
``requires_approval``. They are plain data for the operator to sign into the host's
manifest; nothing is granted until the manifest is signed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from meshagents.errors import FnError

EXEC = "docker.container.exec"
LOGS = "docker.container.logs"
LIST = "docker.container.list"


def light_capabilities(
    container: str,
    executables: Sequence[str],
    *,
    requires_approval: bool = False,
    timeout_s: int = 30,
    output_cap: int = 64 * 1024,
    max_log_lines: int = 1000,
    max_follow_seconds: int = 60,
) -> list[dict[str, Any]]:
    """Capability entries for ``container``: exec (these absolute paths), logs (bounded), list."""
    if not executables:
        raise FnError("rejected_args", "an empty whitelist would allow no exec at all; give at least one")
    relative = [e for e in executables if not e.startswith("/")]
    if relative:
        raise FnError("rejected_args", f"manifest executables must be absolute paths: {relative}")
    only = {"container": [container]}
    return [
        {
            "name": EXEC,
            "description": f"run whitelisted programs in container {container}",
            "executables": sorted(set(executables)),
            "values": only,
            "timeout_s": timeout_s,
            "output_cap_bytes": output_cap,
            "requires_approval": requires_approval,
        },
        {
            "name": LOGS,
            "description": f"logs of container {container}",
            "values": only,
            "limits": {"tail": max_log_lines, "follow_s": max_follow_seconds},
            "timeout_s": max_follow_seconds,
            "output_cap_bytes": output_cap,
            "requires_approval": False,
        },
        {
            "name": LIST,
            "description": f"show container {container}",
            "values": only,
            "limits": {"all": 1},
            "timeout_s": 10,
            "output_cap_bytes": output_cap,
            "requires_approval": False,
        },
    ]


def container_room_alias(name: str) -> str:
    """The Matrix room alias of a deep-mode container: ``#cont-<name>``."""
    return f"#cont-{name}"
