"""Runs on the remote host: read ``{"function", "argv"}`` from stdin, run it like
``fn run``. Parameters come on stdin so they never show in a process list."""

from __future__ import annotations

import json
import os
import sys


def main() -> None:
    request = json.loads(sys.stdin.read() or "{}")
    function_id = str(request["function"])
    argv = [str(a) for a in request.get("argv", [])]
    os.environ.setdefault("FN_CALLER", str(request.get("caller", "remote")))
    from meshagents.runtime.cli import cli

    cli(args=["run", function_id, *argv], prog_name="fn")


if __name__ == "__main__":
    main()
