"""``./fn chat <device>``: a small terminal operator client, for when no Element is at hand.

    ./fn chat home-wsl                          # against the running demo (<state>/demo/connection.json)
    ./fn chat home-wsl --connection FILE        # or explicit: --homeserver URL --user @op:hs
                                                #   --password-file F --server-name hs --bot @bot:hs

Each line you type goes to ``#dev-<device>`` as an operator's message (``!exec ls /tmp``,
``!help``, ...); what the bot and the device answer there is printed, and so are the
approval requests and alerts of ``#operator-approvals``. Chat commands:

    /approve <id>   react 👍 on that approval request (as Element does; the device checks it)
    /deny <id>      react 👎
    /pending        list approval requests seen since start
    /quit           (or Ctrl-D)

It is an operator device like any other: its own Matrix device (store
``<store_root>/chat-<device>``), cross-signed with the operator's seeds, so the bot and
the device agents count its commands and its 👍.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from meshagents.bus import APPROVAL_REQUEST_KEY
from meshagents.errors import FnError
from meshagents.fsutil import load_json
from meshagents.matrix.client import Incoming
from meshagents.testbed.rig.operator import Operator, OperatorLogin


@dataclass(frozen=True)
class ChatTarget:
    login: OperatorLogin
    server_name: str
    bot_user: str


def load_connection(path: Path) -> dict[str, Any]:
    missing = FnError("demo_not_running", f"no {path}: start ./fn demo first, or pass the flags")
    data = load_json(path, missing=missing, invalid="bad_connection_file")
    if not isinstance(data, dict):
        raise FnError("bad_connection_file", f"{path} is not a JSON object")
    return data


def target_from_connection(conn: dict[str, Any], device: str) -> ChatTarget:
    try:
        login = OperatorLogin(
            homeserver=str(conn["homeserver"]),
            user_id=str(conn["operator_user"]),
            password=str(conn["operator_password"]),
            cross_signing_path=Path(conn["cross_signing_path"]),
            store_dir=Path(conn["store_root"]) / f"chat-{device}",
            recovery_key=str(conn.get("recovery_key") or ""),
        )
        return ChatTarget(login, str(conn["server_name"]), str(conn["bot_user"]))
    except KeyError as exc:
        raise FnError("bad_connection_file", f"the connection file lacks {exc}") from exc


def parse_line(line: str) -> tuple[str, str]:
    """A typed line -> (action, argument): ``send``, ``approve``, ``deny``, ``pending``,
    ``quit``, ``empty`` or ``unknown`` (pure)."""
    text = line.rstrip("\n")
    if not text.strip():
        return "empty", ""
    if not text.startswith("/"):
        return "send", text
    word, _, rest = text[1:].partition(" ")
    word = word.lower()
    if word in ("approve", "deny") and rest.strip():
        return word, rest.strip()
    if word in ("pending", "quit", "exit"):
        return ("quit" if word == "exit" else word), ""
    return "unknown", text


def approval_id_of(ev: Incoming) -> str | None:
    req = ev.content.get(APPROVAL_REQUEST_KEY)
    if isinstance(req, dict) and isinstance(req.get("approval_id"), str):
        return str(req["approval_id"])
    return None


def same_id(a: str, b: str) -> bool:
    """Request ids ignore case and read O/I/L as 0/1/1, as the bot does (pure)."""

    def norm(x: str) -> str:
        return x.strip().upper().replace("O", "0").replace("I", "1").replace("L", "1")

    return norm(a) == norm(b)


async def _stdin_lines() -> asyncio.Queue[str | None]:
    queue: asyncio.Queue[str | None] = asyncio.Queue()
    loop = asyncio.get_running_loop()

    def reader() -> None:
        for line in sys.stdin:
            loop.call_soon_threadsafe(queue.put_nowait, line)
        loop.call_soon_threadsafe(queue.put_nowait, None)

    # a daemon thread, not the loop's executor: asyncio.run waits for executor threads
    # at exit, and this one may sit in a read of the terminal for ever
    threading.Thread(target=reader, name="chat-stdin", daemon=True).start()
    return queue


async def chat(device: str, target: ChatTarget, out: Any = print) -> int:
    from meshagents.testbed.rig.demo import quiet_nio

    quiet_nio()
    op = Operator(target.login, bot_user=target.bot_user, server_name=target.server_name)
    out(f"chat: connecting to {target.login.homeserver} as {target.login.user_id} ...")
    await op.start()
    requests: dict[str, str] = {}  # approval id -> request event id
    try:
        room = await op.device_room(device)
        approvals = await op.approvals_room()

        async def show(ev: Incoming) -> None:
            if ev.room_id not in (room, approvals) or ev.sender == target.login.user_id:
                return
            where = f"#dev-{device}" if ev.room_id == room else "#operator-approvals"
            aid = approval_id_of(ev) if ev.room_id == approvals else None
            if aid:
                requests[aid] = ev.event_id
            body = ev.body or ""
            out(f"[{where}] {ev.sender}: {body}" + (f"\n  -> /approve {aid}  or  /deny {aid}" if aid else ""))

        op.on_message(show)
        out(f"chat: in #dev-{device}; type commands (!help), /approve <id>, /pending, /quit")
        lines = await _stdin_lines()
        while (line := await lines.get()) is not None:
            action, arg = parse_line(line)
            if action == "quit":
                break
            if action == "send":
                await op.send(device, arg)
            elif action in ("approve", "deny"):
                match = [eid for aid, eid in requests.items() if same_id(aid, arg)]
                if not match:
                    out(f"chat: no approval request {arg} seen since start (/pending lists them)")
                    continue
                await op.approve(match[0], "👍" if action == "approve" else "👎")
                out(f"chat: {'👍' if action == 'approve' else '👎'} sent for {arg}")
            elif action == "pending":
                out("chat: " + (", ".join(requests) or "no approval requests seen"))
            elif action == "unknown":
                out("chat: commands are /approve <id>, /deny <id>, /pending, /quit")
        return 0
    finally:
        with contextlib.suppress(Exception):
            await op.stop()
