"""Run a command inside a named network namespace (``/run/netns/NAME``), or here if none.

``nsenter --net=`` rather than ``ip netns exec``: the latter gives the process a private
mount table, which keeps namespaces alive after their daemons stop (see FIELD-NOTES).
"""

from __future__ import annotations

import ctypes
import os
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from meshagents.errors import FnError

NETNS_DIR = Path("/run/netns")
CLONE_NEWNET = 0x40000000
T = TypeVar("T")


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


def call_in(netns: str | None, fn: Callable[[], T]) -> T:
    """``fn()`` with its sockets in ``netns``: run in a thread that joined the namespace.

    A network namespace belongs to a thread, so joining it in a fresh thread (``setns``;
    Python 3.11 has no ``os.setns``) leaves the caller and every other thread where they were.
    """
    if netns is None:
        return fn()
    check_netns(netns)
    box: dict[str, object] = {}

    def worker() -> None:
        fd = os.open(NETNS_DIR / netns, os.O_RDONLY)
        try:
            if ctypes.CDLL(None, use_errno=True).setns(fd, CLONE_NEWNET) != 0:
                err = ctypes.get_errno()
                box["error"] = FnError("netns_enter_failed", f"cannot enter {netns!r}: {os.strerror(err)}")
                return
        finally:
            os.close(fd)
        try:
            box["value"] = fn()
        except BaseException as exc:  # handed to the caller's thread below
            box["error"] = exc

    thread = threading.Thread(target=worker, name=f"netns-{netns}", daemon=True)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box["value"]  # type: ignore[return-value]
