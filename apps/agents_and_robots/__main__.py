"""``fn app agents_and_robots``: the bot's entry point.

    fn app agents_and_robots [--config FILE]      # run the bot (settings: config.py, docs/bot.md)

and the offline pieces an operator can try on the hub:

    fn app agents_and_robots --parse '!docker logs web --tail 5' [--view manifest-view.json]
    fn app agents_and_robots --help-for home-wsl --view manifest-view.json

A start-up error exits 1 with ``{"error", "message"}`` on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from apps.agents_and_robots.commands import Command, precheck
from apps.agents_and_robots.commands import parse as parse_command
from apps.agents_and_robots.help import render_help
from meshagents.errors import FnError


def _view(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise SystemExit("--view must hold a JSON object {capability: {...}}")
    return data


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="fn app agents_and_robots",
                                 description="The Matrix bot.")
    ap.add_argument("--parse", metavar="TEXT", help="parse one message and print the result as JSON")
    ap.add_argument("--help-for", metavar="DEVICE", help="print !help for DEVICE with --view")
    ap.add_argument("--config", type=Path,
                    help="bot settings (default $FN_STATE_DIR/agents_and_robots/bot.toml)")
    ap.add_argument("--view", type=Path, help="manifest view JSON: {capability: {requires_approval, ...}}")
    ns = ap.parse_args(argv)
    view = _view(ns.view)
    if ns.parse is not None:
        result = parse_command(ns.parse)
        out: dict[str, Any] = {"kind": type(result).__name__, **asdict(result)}
        if isinstance(result, Command):
            out["precheck"] = asdict(precheck(result, view))
        print(json.dumps(out, ensure_ascii=False, indent=2))
        return 0 if isinstance(result, Command) else 1
    if ns.help_for is not None:
        print(render_help(ns.help_for, view).text)
        return 0
    try:
        asyncio.run(_serve(ns.config))
    except FnError as exc:
        print(json.dumps({"error": exc.code, "message": exc.message}), file=sys.stderr)
        return 1
    return 0


async def _serve(config: Path | None) -> None:
    from apps.agents_and_robots import config as bot_config  # the Matrix stack loads only here

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one INFO line per hub request is noise
    shell = bot_config.build(bot_config.load(config))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await shell.start(wait=True)
    logging.getLogger("agents_and_robots").info(
        "bot %s running; approvals room %s; control API %s", shell.client.user_id, shell.approvals_room,
        shell.control_bound or "off")
    try:
        await stop.wait()
    finally:
        await shell.stop()


if __name__ == "__main__":
    sys.exit(main())
