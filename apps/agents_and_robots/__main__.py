"""``fn app agents_and_robots``: the bot's entry point.

Until the Matrix shell is wired on top of the Matrix client base and the trust core,
this offers the offline pieces an operator can try on the hub:

    fn app agents_and_robots --parse '!docker logs web --tail 5' [--view manifest-view.json]
    fn app agents_and_robots --help-for home-wsl --view manifest-view.json

Without those options it exits 1 with ``bot_shell_not_wired``.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from apps.agents_and_robots.commands import Command, precheck
from apps.agents_and_robots.commands import parse as parse_command
from apps.agents_and_robots.help import render_help


def _view(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise SystemExit("--view must hold a JSON object {capability: {...}}")
    return data


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="fn app agents_and_robots",
                                 description="The Matrix bot (offline tools for now).")
    ap.add_argument("--parse", metavar="TEXT", help="parse one message and print the result as JSON")
    ap.add_argument("--help-for", metavar="DEVICE", help="print !help for DEVICE with --view")
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
    print(json.dumps({"error": "bot_shell_not_wired",
                      "message": "the Matrix shell of the bot is not wired yet; see docs/bot.md"}),
          file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
