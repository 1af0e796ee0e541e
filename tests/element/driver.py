"""Drive the Element-stack test client (``client.mjs``: matrix-js-sdk + Rust crypto) from pytest.

    async with ElementClient.spawn() as el:
        me = await el.login(homeserver, "@operator:hub.mesh", password)
        await el.verify(recovery_key)            # "Verify with Recovery Key", secret storage only
        room = await el.join("#dev-home-wsl:hub.mesh")
        sent = await el.send(room, "!exec ls /tmp")
        reply = await el.wait_event({"room_id": room, "in_reply_to": sent["event_id"]})

One node process per client; one JSON line per command and per answer (see client.mjs).
``npm ci`` in this folder installs the pinned SDK (``.ci/run`` does it).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


class ElementClientError(RuntimeError):
    """The client answered ``ok: false`` (the SDK's error text is the message)."""


def installed() -> bool:
    return (HERE / "node_modules" / "matrix-js-sdk").is_dir() and shutil.which("node") is not None


class ElementClient:
    def __init__(self, proc: asyncio.subprocess.Process, log_path: Path) -> None:
        self.proc = proc
        self.log_path = log_path
        self._ids = itertools.count(1)
        self._lock = asyncio.Lock()
        self.user_id = ""
        self.device_id = ""

    @classmethod
    @contextlib.asynccontextmanager
    async def spawn(cls, log_path: Path | None = None) -> AsyncIterator[ElementClient]:
        if not installed():
            raise RuntimeError(f"run `npm ci` in {HERE} first (node and matrix-js-sdk are needed)")
        log_path = log_path or Path(os.environ.get("TMPDIR", "/tmp")) / f"element-client-{os.getpid()}.log"
        log = log_path.open("ab")
        proc = await asyncio.create_subprocess_exec(
            "node", str(HERE / "client.mjs"),
            cwd=HERE, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=log,
            limit=16 * 1024 * 1024,
        )  # fmt: skip
        client = cls(proc, log_path)
        try:
            yield client
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.call("stop"), 5)
            if proc.returncode is None:
                proc.kill()
            await proc.wait()
            log.close()

    async def call(self, op: str, timeout: float = 120.0, **args: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        async with self._lock:
            req_id = next(self._ids)
            self.proc.stdin.write((json.dumps({"id": req_id, "op": op, **args}) + "\n").encode())
            await self.proc.stdin.drain()
            line = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        if not line:
            raise ElementClientError(f"client exited during {op}; log {self.log_path}: {self.tail()}")
        answer: dict[str, Any] = json.loads(line)
        if answer.get("id") != req_id:
            raise ElementClientError(f"answer out of order: {answer}")
        if not answer.get("ok"):
            raise ElementClientError(f"{op}: {answer.get('error')}")
        return answer

    def tail(self, n: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    async def login(
        self, homeserver: str, user: str, password: str, *, isolation: str = "only_signed"
    ) -> dict[str, Any]:
        """``isolation``: "only_signed" (Element's "exclude insecure devices") or "all"."""
        me = await self.call(
            "login", homeserver=homeserver, user=user, password=password, isolation=isolation
        )
        self.user_id, self.device_id = str(me["user_id"]), str(me["device_id"])
        return me

    async def status(self) -> dict[str, Any]:
        return await self.call("status")

    async def verify(self, recovery_key: str) -> dict[str, Any]:
        return await self.call("verify", recovery_key=recovery_key)

    async def reset_identity(self) -> dict[str, Any]:
        return await self.call("reset_identity")

    async def join(self, room: str) -> str:
        return str((await self.call("join", room=room))["room_id"])

    async def send(self, room_id: str, body: str) -> dict[str, Any]:
        return await self.call("send", room_id=room_id, body=body)

    async def react(self, room_id: str, event_id: str, key: str) -> str:
        return str((await self.call("react", room_id=room_id, event_id=event_id, key=key))["event_id"])

    async def events(self) -> list[dict[str, Any]]:
        """Every event seen since login (for a failing test's message)."""
        return list((await self.call("events"))["events"])

    async def wait_event(self, match: dict[str, Any], timeout: float = 30.0) -> dict[str, Any]:
        ms = int(timeout * 1000)
        answer = await self.call("wait_event", timeout=timeout + 10, match=match, timeout_ms=ms)
        event: dict[str, Any] = answer["event"]
        return event
