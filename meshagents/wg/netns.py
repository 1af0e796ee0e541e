"""Run a command inside a named network namespace (``/run/netns/NAME``), or here if none.

``nsenter --net=`` rather than ``ip netns exec``: the latter gives the process a private
mount table, which keeps namespaces alive after their daemons stop (see FIELD-NOTES).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from meshagents.errors import FnError

NETNS_DIR = Path("/run/netns")


def check_netns(netns: str | None) -> None:
    if netns is not None and not (NETNS_DIR / netns).exists():
        raise FnError("netns_missing", f"no network namespace {netns!r} in {NETNS_DIR}")


def wrap(argv: list[str], netns: str | None) -> list[str]:
    """``argv`` prefixed so that it runs inside ``netns``."""
    if netns is None:
        return argv
    return ["nsenter", f"--net={NETNS_DIR / netns}", *argv]


def run(
    argv: list[str], netns: str | None, *, input_text: str | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run and capture; a failure becomes FnError ``command_failed`` naming the program."""
    try:
        proc = subprocess.run(wrap(argv, netns), input=input_text, capture_output=True, text=True, timeout=60)
    except FileNotFoundError as exc:
        raise FnError("missing_binary", f"{argv[0]} is not installed") from exc
    if check and proc.returncode != 0:
        raise FnError(
            "command_failed",
            f"{argv[0]} exited {proc.returncode}: {proc.stderr.strip()[:500]}",
            command=argv[0],
        )
    return proc
