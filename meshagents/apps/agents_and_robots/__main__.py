"""``fn app agents_and_robots``: the bot's entry point.

    fn app agents_and_robots [--config FILE]      # run the bot (settings: config.py, docs/bot.md)

and the offline pieces an operator can try on the hub:

    fn app agents_and_robots --parse '!docker logs web --tail 5' [--view manifest-view.json]
    fn app agents_and_robots --help-for home-wsl --view manifest-view.json

A start-up error exits 1 with ``{"error", "message"}`` on stderr.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import click

from meshagents.apps.agents_and_robots.commands import Command, precheck
from meshagents.apps.agents_and_robots.commands import parse as parse_command
from meshagents.apps.agents_and_robots.help import render_help
from meshagents.runtime.appcli import CONTEXT, run_app


def _view(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise SystemExit("--view must hold a JSON object {capability: {...}}")
    return data


@click.command(context_settings=CONTEXT, help="The Matrix bot (settings: docs/bot.md).")
@click.option("--parse", "text", metavar="TEXT", help="Parse one message and print the result as JSON.")
@click.option("--help-for", metavar="DEVICE", help="Print !help for DEVICE with --view.")
@click.option("--config", type=click.Path(path_type=Path),
              help="Bot settings (default $FN_STATE_DIR/agents_and_robots/bot.toml).")
@click.option("--view", type=click.Path(path_type=Path),
              help="Manifest view JSON: {capability: {requires_approval, ...}}.")
def command(text: str | None, help_for: str | None, config: Path | None, view: Path | None) -> int:
    shown = _view(view)
    if text is not None:
        result = parse_command(text)
        out: dict[str, Any] = {"kind": type(result).__name__, **asdict(result)}
        if isinstance(result, Command):
            out["precheck"] = asdict(precheck(result, shown))
        print(json.dumps(out, ensure_ascii=False, indent=2))
        return 0 if isinstance(result, Command) else 1
    if help_for is not None:
        print(render_help(help_for, shown).text)
        return 0
    asyncio.run(_serve(config))
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_app(command, argv, "fn app agents_and_robots")


async def _serve(config: Path | None) -> None:
    from meshagents.apps.agents_and_robots import config as bot_config  # the Matrix stack loads only here

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
