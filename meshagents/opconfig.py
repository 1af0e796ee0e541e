"""The operator's own configuration, on the operator's machine: what a manifest must name.

A compromised hub may prepare any manifest; what the operator signs is checked against
this file, never against the hub's word::

    # $FN_OPERATOR_CONFIG, else <state>/operator/operator.toml
    controllers = ["<base64 ed25519 public key of the bot's controller key>"]
    approvers = ["@operator:hub.example"]
    operator_key = "<base64 public key>"   # optional: default the public half of operator/ed25519
    profiles_dir = "/path/to/profiles"     # optional: default <checkout>/apps/wg_hub/profiles

    cfg = load()                          # OperatorConfig (exists=False when there is no file)
    cfg.expected(operator_key) -> review.Expected
    load_profile(cfg, name) -> {"name", "capabilities"}   # review.profile_content form
    remember_signed(manifest) / last_signed(device_id)    # <state>/operator/signed/<id>.json
    record_token(...) / token_profile(device_name)        # <state>/operator/tokens.jsonl

Errors: ``operator_config_invalid`` (bad TOML or fields), ``profile_unknown``,
``profile_invalid``.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, StrictStr

from meshagents.configfile import validate
from meshagents.errors import FnError
from meshagents.fsutil import write_atomic
from meshagents.state import package_dir, state_dir
from meshagents.trust.models import NAME_PATTERN
from meshagents.trust.profiles import read_profile
from meshagents.trust.review import Expected, profile_content

_NAME = re.compile(NAME_PATTERN)


def config_path() -> Path:
    env = os.environ.get("FN_OPERATOR_CONFIG")
    return Path(env) if env else state_dir() / "operator" / "operator.toml"


@dataclass(frozen=True)
class OperatorConfig:
    path: Path
    exists: bool
    controllers: tuple[str, ...] | None
    approvers: tuple[str, ...] | None
    operator_key: str | None
    profiles_dir: Path

    def expected(self, operator_key: str | None = None) -> Expected:
        """What a manifest must name; ``operator_key`` (the key store's) when the file names none."""
        return Expected(self.controllers, self.approvers, self.operator_key or operator_key)


class _OperatorFile(BaseModel):
    """The file's shape (every key optional, no other key)."""

    model_config = ConfigDict(extra="forbid")

    controllers: tuple[StrictStr, ...] | None = None
    approvers: tuple[StrictStr, ...] | None = None
    operator_key: StrictStr | None = None
    profiles_dir: StrictStr | None = None


def load(path: Path | None = None) -> OperatorConfig:
    path = path or config_path()
    default_profiles = package_dir() / "apps" / "wg_hub" / "profiles"
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return OperatorConfig(path, False, None, None, None, default_profiles)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise FnError("operator_config_invalid", f"{path}: {exc}") from exc
    got = validate(_OperatorFile, data, source=str(path), code="operator_config_invalid")
    return OperatorConfig(
        path=path,
        exists=True,
        controllers=got.controllers,
        approvers=got.approvers,
        operator_key=got.operator_key,
        profiles_dir=Path(got.profiles_dir) if got.profiles_dir is not None else default_profiles,
    )


def load_profile(cfg: OperatorConfig, name: str) -> dict[str, Any]:
    """The operator's copy of profile ``name``, in the hashed form."""
    return profile_content(name, read_profile(cfg.profiles_dir, name)["capabilities"])


def _signed_dir() -> Path:
    return state_dir() / "operator" / "signed"


def remember_signed(manifest: dict[str, Any]) -> Path:
    """Keep the last manifest this machine signed per device (the 'previous' of a re-issue)."""
    folder = _signed_dir()
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    device = str(manifest["device_id"])
    if not _NAME.match(device.lower()) or "/" in device:
        raise FnError("manifest_invalid", f"odd device id {device!r}")
    path = folder / f"{device}.json"
    write_atomic(path, json.dumps(manifest, indent=2, sort_keys=True) + "\n", mode=0o666, fsync=False)
    return path


def last_signed(device_id: str) -> dict[str, Any] | None:
    path = _signed_dir() / f"{device_id}.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _tokens_path() -> Path:
    return state_dir() / "operator" / "tokens.jsonl"


def record_token(
    *, device_name: str, profile: str, profile_sha256: str, token_id: str, expires_at: int
) -> None:
    """Remember which profile this machine's token named for a device (not the hub's word)."""
    path = _tokens_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    row = {"device_name": device_name, "profile": profile, "profile_sha256": profile_sha256,
           "token_id": token_id, "expires_at": expires_at}  # fmt: skip
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(row, sort_keys=True) + "\n")


def token_profile(device_name: str) -> dict[str, Any] | None:
    """The newest token record for ``device_name`` ({profile, profile_sha256, ...}), if any."""
    try:
        lines = _tokens_path().read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict) and row.get("device_name") == device_name:
            return row
    return None
