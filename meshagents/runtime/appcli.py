"""Run an app's click command as ``main(argv) -> int`` (one CLI framework for fn and the apps).

Each app's ``__main__`` defines a ``click.Command`` and hands it here: ``--help``
prints and returns 0, bad usage prints click's message and returns 2, a ``FnError``
prints ``{"error", "message"}`` on stderr and returns its exit code, and the
command's own return value (an int) becomes the exit status — so ``fn app NAME --help``
and the tests' ``main([...])`` behave alike.
"""

from __future__ import annotations

import json
import sys

import click

from meshagents.errors import FnError

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def run_app(command: click.Command, argv: list[str] | None, prog_name: str) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    try:
        rv = command.main(args=args, prog_name=prog_name, standalone_mode=False)
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.Abort:
        return 130
    except click.ClickException as exc:
        exc.show()
        return int(exc.exit_code)
    except FnError as exc:
        print(json.dumps(exc.to_json(), ensure_ascii=False), file=sys.stderr)
        return exc.exit_code
    if isinstance(rv, int):  # click returns the exit code of --help and friends as well
        return rv
    return 0
