"""Turn a typed entry point's signature into click options (``fn run`` parameters).

Supported annotations: str, int, float, bool, Path, Literal[...], list[str|int|Path]
(repeat the option), ``X | None``, and dict / list[dict] (given as JSON text).
"""

from __future__ import annotations

import inspect
import json
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import click

from meshagents.errors import UsageError
from meshagents.runtime.docstrings import param_docs, shared_args, summary_text


class JsonParam(click.ParamType):  # type: ignore[type-arg]
    name = "json"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if not isinstance(value, str):
            return value
        try:
            return json.loads(value)
        except json.JSONDecodeError as exc:
            self.fail(f"not valid JSON: {exc}", param, ctx)


def _strip_optional(tp: Any) -> tuple[Any, bool]:
    origin = get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return tp, False


def _click_type(tp: Any) -> tuple[Any, bool]:
    """(click type, multiple) for an annotation."""
    if tp is bool:
        return click.BOOL, False
    if tp is int:
        return click.INT, False
    if tp is float:
        return click.FLOAT, False
    if tp is str:
        return click.STRING, False
    if tp is Path:
        return click.Path(path_type=Path), False
    origin = get_origin(tp)
    if origin is Literal:
        return click.Choice([str(a) for a in get_args(tp)]), False
    if origin in (list, tuple) and get_args(tp):
        inner = get_args(tp)[0]
        if inner in (str, int, float, Path):
            return _click_type(inner)[0], True
    return JsonParam(), False


def options_for(fn: Callable[..., Any]) -> list[click.Option]:
    hints = typing.get_type_hints(fn)
    described = param_docs(inspect.getdoc(fn), shared_args(Path(inspect.getfile(fn)).parent))
    opts: list[click.Option] = []
    for name, param in inspect.signature(fn).parameters.items():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        doc = described.get(name)
        tp, _optional = _strip_optional(hints.get(name, str))
        flag = "--" + name.replace("_", "-")
        has_default = param.default is not inspect.Parameter.empty
        if tp is bool:
            extra: dict[str, Any] = {"default": param.default} if has_default else {}
            opts.append(
                click.Option(
                    [f"{flag}/--no-{name.replace('_', '-')}"],
                    required=not has_default,
                    show_default=True,
                    help=doc,
                    **extra,
                )
            )
            continue
        ctype, multiple = _click_type(tp)
        # click >= 8.2 treats an explicit default=None as a real default, which would
        # make a required option optional: pass a default only when there is one.
        kwargs: dict[str, Any] = {}
        if has_default:
            kwargs["default"] = param.default
            kwargs["show_default"] = param.default is not None
        if multiple:
            doc = f"{doc or ''} (repeat the option)".strip()
        opts.append(
            click.Option([flag], type=ctype, multiple=multiple, required=not has_default, help=doc, **kwargs)
        )
    return opts


def parse_args(function_id: str, fn: Callable[..., Any], argv: list[str]) -> dict[str, Any]:
    """Parse ``argv`` into keyword arguments for ``fn``; bad usage raises UsageError."""
    cmd = _command(function_id, fn)
    try:
        ctx = cmd.make_context(f"fn run {function_id}", list(argv))
    except click.UsageError as exc:
        raise UsageError(exc.format_message(), function=function_id) from exc
    kwargs = dict(ctx.params)
    for name, value in list(kwargs.items()):
        if isinstance(value, tuple):
            kwargs[name] = list(value)
    return kwargs


_RUN_EPILOG = (
    "Prints the result as JSON on stdout. Exit 0 on success; 1 on failure, with "
    '{"error": CODE, "message": ...} on stderr; 2 on bad usage. '
    "See also: fn run --help (--host, --json, state directory)."
)


def _command(function_id: str, fn: Callable[..., Any]) -> click.Command:
    return click.Command(
        function_id,
        params=list(options_for(fn)),
        help=summary_text(inspect.getdoc(fn)),
        epilog=_RUN_EPILOG,
    )


def help_text(function_id: str, fn: Callable[..., Any]) -> str:
    cmd = _command(function_id, fn)
    with click.Context(cmd, info_name=f"fn run {function_id}") as ctx:
        return cmd.get_help(ctx)
