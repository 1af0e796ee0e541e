"""Light mode: the capability entries that map a container into its host's manifest.

The host's device agent then serves ``!docker exec <container> <cmd>`` (and list,
logs) from ``#dev-<host>``. These are plain data for the operator to sign into the
host's manifest; nothing is granted until the manifest is signed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from meshagents.dockerctl.whitelist import invalid_entries
from meshagents.errors import FnError

EXEC = "docker.container.exec"
LOGS = "docker.container.logs"
LIST = "docker.container.list"


def light_capabilities(
    container: str,
    whitelist: Sequence[str],
    *,
    requires_approval: bool = False,
    timeout_s: int = 30,
    output_cap: int = 64 * 1024,
    max_log_lines: int = 1000,
    max_follow_seconds: int = 60,
) -> list[dict[str, Any]]:
    """Capability entries for ``container``: exec (whitelisted binaries), logs (bounded), list."""
    bad = invalid_entries(whitelist)
    if bad:
        raise FnError("rejected_args", f"whitelist entries that can never match: {bad}", entries=bad)
    if not whitelist:
        raise FnError("rejected_args", "an empty whitelist would allow no exec at all; give at least one")
    binaries = sorted(set(whitelist))
    return [
        {
            "name": EXEC,
            "constraints": {"container": container, "binaries": binaries},
            "requires_approval": requires_approval,
            "timeout_s": timeout_s,
            "output_cap": output_cap,
        },
        {
            "name": LOGS,
            "constraints": {
                "container": container,
                "max_lines": max_log_lines,
                "max_follow_seconds": max_follow_seconds,
            },
            "requires_approval": False,
            "timeout_s": max_follow_seconds,
            "output_cap": output_cap,
        },
        {
            "name": LIST,
            "constraints": {"filters": {"name": [container]}},
            "requires_approval": False,
            "timeout_s": 10,
            "output_cap": output_cap,
        },
    ]


def container_room_alias(name: str) -> str:
    """The Matrix room alias of a deep-mode container: ``#cont-<name>``."""
    return f"#cont-{name}"
