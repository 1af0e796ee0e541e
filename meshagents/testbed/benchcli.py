"""The benchmarks' flags, parsed with click (the project's one CLI framework).

A bench script names its flags and defaults; ``./fn bench NAME`` runs it with none::

    ns = benchcli.options("What it measures.", n=(int, 30), dir=(Path, None, "work dir"))
    ns.n, ns.dir                       # --n 50 --dir /var/tmp/x; a bool flag is --name-with-dashes
"""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import click


def _param(name: str, spec: tuple[Any, ...]) -> click.Option:
    kind, default = spec[0], spec[1]
    help_text = spec[2] if len(spec) > 2 else None
    flag = f"--{name.replace('_', '-')}"
    if kind is bool:
        return click.Option([flag, name], is_flag=True, default=bool(default), help=help_text)
    ptype = click.Path(path_type=Path) if kind is Path else kind
    return click.Option([flag, name], type=ptype, default=default, show_default=True, help=help_text)


def options(description: str | None = None, argv: list[str] | None = None, **spec: tuple[Any, ...]) -> Any:
    """The parsed flags as a namespace (``--help`` and bad usage exit as click does: 0, 2)."""
    command = click.Command(
        "bench",
        params=[_param(name, s) for name, s in spec.items()],
        help=description,
        callback=lambda **kw: SimpleNamespace(**kw),
    )
    try:
        got = command.main(args=sys.argv[1:] if argv is None else argv, standalone_mode=False)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    if not isinstance(got, SimpleNamespace):  # --help printed
        sys.exit(int(got or 0))
    return got
