"""Config files: read as a mapping (TOML, JSON or YAML), validated by a pydantic model.

Every config file of the project (hub, device agent, bot, dashboard, operator) goes
through here, so a bad file is refused the same way everywhere: one ``FnError`` with the
file's stable code (``config_invalid``, ``agent_config_invalid``, ...) whose message names
the file, the key and the type expected — and no partial config::

    data = read_mapping(path, code="config_invalid")              # {} for an empty YAML
    cfg = validate(HubConfig, data, source=str(path), code="config_invalid")
    # FnError(config_invalid): hub.toml: public_port: expected an integer (got '80')
    #   .details: {"file": "hub.toml", "key": "public_port", "expected": "an integer"}
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from meshagents.errors import FnError

M = TypeVar("M", bound=BaseModel)

_SECRET = re.compile(r"password|token|secret|private", re.IGNORECASE)

#: pydantic error types in words an operator reads in a config file.
_EXPECTED = {
    "string_type": "a string",
    "int_type": "an integer",
    "int_parsing": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "list_type": "a list",
    "tuple_type": "a list",
    "dict_type": "a table",
    "model_type": "a table",
    "model_attributes_type": "a table",
    "dataclass_type": "a table",
    "path_type": "a path",
    "missing": "a value (the key is required)",
    "extra_forbidden": "no such key (unknown key)",
}


def _expected(err: Mapping[str, Any]) -> str:
    kind = str(err.get("type", ""))
    if kind in _EXPECTED:
        return _EXPECTED[kind]
    msg = str(err.get("msg", kind))
    for prefix in ("Input should be ", "Value error, "):
        if msg.startswith(prefix):
            msg = msg[len(prefix) :]
    return msg


def _hide(key: str, err: Mapping[str, Any]) -> bool:
    """No value shown for a missing or unknown key, and never a secret's value."""
    return err.get("type") in ("missing", "extra_forbidden") or _SECRET.search(key) is not None


def _key(loc: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in loc) or "(the file)"


def validate(
    model: type[M], data: Any, *, source: str, code: str, context: dict[str, Any] | None = None
) -> M:
    """``model`` from ``data``; ``FnError(code)`` naming ``source``, key and expected type.
    ``context`` reaches the model's validators (e.g. the directory relative paths start in)."""
    try:
        return model.model_validate(data, context=context)
    except ValidationError as exc:
        raise config_error(exc, source=source, code=code) from None


def config_error(exc: ValidationError, *, source: str, code: str) -> FnError:
    """The one ``FnError`` for a refused config: every problem in the message, the first
    one's key and expected type in the details."""
    problems = []
    for err in exc.errors():
        key, expected = _key(tuple(err.get("loc", ()))), _expected(err)
        shown = "" if _hide(key, err) else f" (got {err.get('input')!r})"
        problems.append((key, expected, f"{key}: expected {expected}{shown}"))
    first_key, first_expected, _ = problems[0]
    return FnError(
        code,
        f"{source}: " + "; ".join(p[2] for p in problems),
        file=source,
        key=first_key,
        expected=first_expected,
    )


def _yaml(text: str) -> Any:
    """YAML, imported only when a file is YAML: the agent's config is JSON, and PyYAML
    costs a device ~1 MB of RSS it would never use. ``yaml.YAMLError`` becomes ValueError."""
    import yaml

    try:
        return yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ValueError(str(exc)) from exc


def read_mapping(path: Path, *, code: str, unreadable: str = "config_unreadable") -> dict[str, Any]:
    """The mapping in ``path`` (by suffix: .toml, .json, else YAML); an empty YAML is ``{}``."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise FnError(unreadable, f"cannot read {path}: {exc.strerror}", file=str(path)) from exc
    try:
        if path.suffix == ".toml":
            data = tomllib.loads(text)
        elif path.suffix == ".json":
            data = json.loads(text)
        else:
            data = _yaml(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError, ValueError) as exc:
        raise FnError(code, f"{path}: {exc}", file=str(path)) from exc
    if not isinstance(data, dict):
        raise FnError(code, f"{path}: not a mapping", file=str(path))
    return data
