"""The bot's real control API (meshagents/apps/agents_and_robots/control.py) over a stand-in bot.

    python -m tests.testbed.bot_standin --port 8766 --state FILE.json --token-file FILE

The HTTP layer is the bot's own ``ControlApi`` (routes, bearer check, error JSON); only
what sits behind it is replaced: instead of a bot on Matrix, ``FILE.json`` holding
``{"approvals": [...], "devices": [...]}``, re-read on every request (a test changes
what the "bot" says by rewriting it; a deny is written back with ``decided_by``
"dashboard"). A file that does not parse makes the bot answer 500, which the dashboard
must show as "bot unreachable". Running the whole bot would need a homeserver and
device agents, which the bot's own tests cover.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from pathlib import Path
from typing import Any

from meshagents.apps.agents_and_robots.control import ControlApi


class StandInBot:
    """What ``ControlApi`` asks of the running bot (its ``Controlled`` protocol)."""

    def __init__(self, state: Path) -> None:
        self.state = state

    def _load(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.state.read_text())
        return data

    def health(self) -> str:
        return "ok"

    def approvals(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self._load()["approvals"]
        return sorted(items, key=lambda a: (a["state"] != "pending", a["created_at"]))

    def devices_listing(self) -> list[dict[str, Any]]:
        devices: list[dict[str, Any]] = self._load()["devices"]
        return devices

    async def deny(self, approval_id: str) -> str:
        data = self._load()
        for a in data["approvals"]:
            if a["approval_id"] == approval_id:
                if a["state"] != "pending":
                    return "decided"
                a["state"], a["decided_by"] = "denied", "dashboard"
                tmp = self.state.with_suffix(".tmp")
                tmp.write_text(json.dumps(data))
                os.replace(tmp, self.state)
                return "denied"
        return "not_found"


async def serve(port: int, state: Path, token: str) -> None:
    api = ControlApi(StandInBot(state), token)
    await api.start(["127.0.0.1"], port)
    try:
        await asyncio.Event().wait()
    finally:
        await api.stop()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--state", type=Path, required=True)
    p.add_argument("--token-file", type=Path, required=True)
    args = p.parse_args()
    asyncio.run(serve(args.port, args.state, args.token_file.read_text().strip()))


if __name__ == "__main__":
    main()
