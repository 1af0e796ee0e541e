"""``./fn demo`` and ``./fn demo --smoke``: the whole system on this machine, one command.

    run_demo(smoke=False)   # up, print addresses and the operator's login, wait for Ctrl-C, tear down
    run_demo(smoke=True)    # up, one `!exec ls /tmp` in #dev-home-wsl through a Matrix client,
                            # print the round trip, tear down; exit 0 only if all worked

While it runs, ``<state>/demo/connection.json`` (0600) tells ``./fn chat`` where to
connect and as whom; it is removed at teardown. SIGINT and SIGTERM both unwind
through the rig's teardown, which leaves no namespace, interface or process behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

from meshagents.errors import FnError
from meshagents.fsutil import write_atomic

SMOKE_DEVICE = "home-wsl"
SMOKE_COMMAND = "!exec ls /tmp"
Echo = Callable[[str], None]


def connection_path() -> Path:
    from meshagents.state import state_dir

    return state_dir() / "demo" / "connection.json"


def reply_ok(body: str) -> bool:
    """The device agent's notice head reads ``<capability> [<request id>]: ok`` (pure)."""
    head = body.split("\n", 1)[0]
    return head.endswith("]: ok") or "]: ok (exit" in head


def banner(conn: dict[str, Any], workdir: Path) -> str:
    """What the operator needs to start (pure)."""
    rooms = conn["rooms"]
    devices = [d for d in rooms if d != "approvals"]
    lines = [
        "",
        "meshagents demo is up.",
        f"  dashboard      {conn['dashboard']}   (log in with the operator token below)",
        f"  operator token {conn['api_token']}",
        f"  homeserver     {conn['homeserver']}   (any Matrix client, e.g. Element)",
        f"  server name    {conn['server_name']}",
        f"  login          {conn['operator_user']}   password {conn['operator_password']}",
        f"  recovery key   {conn.get('recovery_key', '')}   (Element: Verify with Recovery Key)",
        "  rooms          " + "  ".join(rooms[d] for d in devices) + f"  {rooms['approvals']}",
        f"  hub API        {conn['hub_api']}    bot API {conn['bot_api']}",
        "",
        "Talk to a device from another terminal:  ./fn chat " + (devices[0] if devices else "<device>"),
        "  then e.g.  !help   !exec ls /tmp   !info   !docker ps   !fs.write /tmp/x hello  (needs your 👍)",
        f"Logs: {workdir / 'logs'}",
        "Ctrl-C stops everything.",
        "",
    ]
    return "\n".join(lines)


def timings_line(timings: dict[str, float]) -> str:
    """``step 1.2 s, ...`` for the slowest steps first, at most five (pure)."""
    top = sorted(timings.items(), key=lambda kv: -kv[1])[:5]
    return ", ".join(f"{name} {secs:.1f} s" for name, secs in top)


def _write_connection(conn: dict[str, Any]) -> Path:
    path = connection_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_atomic(path, json.dumps(conn, indent=2), fsync=False)
    return path


def quiet_nio() -> None:
    """nio logs every not-yet-decryptable event as a warning; the operator needs none of it."""
    import logging

    logging.getLogger("nio").setLevel(logging.ERROR)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


FIRST_ANSWER_S = 20.0


async def smoke(rig: Any, echo: Echo) -> bool:
    """One command through the operator's Matrix client, timed; True when the device answered ok."""
    op = rig.operator_client("smoke")
    await op.start()
    try:
        ok = True
        for label in ("first", "warm"):
            try:
                reply = await op.command(SMOKE_DEVICE, SMOKE_COMMAND, timeout=FIRST_ANSWER_S)
            except FnError as exc:
                if exc.code != "reply_timeout":
                    raise
                # Seen about one run in four on a loaded CI machine: the very first message
                # from a brand-new operator device goes unanswered (suspected: room-key sharing
                # racing the device-list update). An operator would send it again; so does the
                # smoke, saying so — an open defect, not a pass in silence.
                echo(f"demo smoke: no answer in {FIRST_ANSWER_S:.0f} s; sending the command again")
                reply = await op.command(SMOKE_DEVICE, SMOKE_COMMAND, timeout=60)
            head = reply.body.split("\n", 1)[0]
            good = reply.sender == rig.devices[SMOKE_DEVICE].matrix_user and reply_ok(reply.body)
            echo(
                f"demo smoke: {SMOKE_COMMAND} in #dev-{SMOKE_DEVICE} -> {head!r}; "
                f"round trip ({label}) {reply.seconds * 1000:.0f} ms"
            )
            ok = ok and good
        return ok
    finally:
        await op.stop()


def run_demo(
    *,
    smoke_test: bool,
    devices: tuple[str, ...] = ("home-wsl", "pc-aurgi"),
    docker: bool = True,
    echo: Echo = print,
) -> int:
    from meshagents.testbed.rig.install import ensure_packages
    from meshagents.testbed.rig.rig import Rig

    if os.geteuid() != 0:
        raise FnError("needs_root", "./fn demo needs root (network namespaces, WireGuard, dockerd)")
    ensure_packages(echo, docker=docker)
    quiet_nio()
    # SIGINT too: a shell that starts us in the background leaves SIGINT ignored
    old = {sig: signal.signal(sig, _interrupt) for sig in (signal.SIGTERM, signal.SIGINT)}
    t0 = time.perf_counter()
    conn_file: Path | None = None
    try:
        with Rig.up(devices=devices, docker=docker, log=echo) as rig:
            echo(f"demo: up in {time.perf_counter() - t0:.1f} s ({timings_line(rig.timings)})")
            if smoke_test:
                # no connection file: a smoke run must not replace a running demo's
                ok = asyncio.run(smoke(rig, echo))
                echo("demo smoke: " + ("OK" if ok else "FAILED"))
                return 0 if ok else 1
            conn = rig.connection()
            conn_file = _write_connection(conn)
            echo(banner(conn, rig.workdir))
            echo(f"(connection details for ./fn chat: {conn_file}, 0600)")
            _watch(rig, echo)
            return 0
    except KeyboardInterrupt:
        echo("demo: stopped")
        return 0 if not smoke_test else 1
    finally:
        if conn_file is not None:
            with contextlib.suppress(FileNotFoundError):
                conn_file.unlink()
        for sig, handler in old.items():
            signal.signal(sig, handler)


def _watch(rig: Any, echo: Echo) -> None:
    """Wait for Ctrl-C; say so once when a part of the rig stops by itself."""
    reported: set[str] = set()
    while True:
        time.sleep(1.0)
        for name, child in list(rig.procs.children.items()):
            if not child.alive() and name not in reported:
                reported.add(name)
                echo(f"demo: {name} exited ({child.proc.returncode}); log {child.log}")
