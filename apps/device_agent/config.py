"""The agent's configuration: a frozen dataclass read from one JSON file.

Enrollment writes ``<state>/device_agent/config.json`` (0600, it holds the Matrix
password). Relative paths in it are taken from the file's directory, so a whole
state directory can be moved. Keys::

    {"device_id": "dev-0001", "device_name": "home-wsl",
     "manifest_path": "manifest.json", "operator_key": "<base64 ed25519 public key>",
     "homeserver": "http://10.42.0.1:8008", "matrix_user": "@dev-home-wsl:hub",
     "matrix_password": "...", "store_dir": "matrix-store",
     "device_room": "#dev-home-wsl:hub", "approvals_room": "#operator-approvals:hub",
     "bot_users": ["@bot:hub"],
     "hub_url": "http://10.42.0.1:8080" | null,      # audit shipping + mesh health
     "skew_s": 30, "sandbox": true,
     "audit_path": "audit.sqlite", "data_dir": ".",   # defaults relative to the file
     "keystore": "file" | "pass" | null, "keys_dir": null,
     "docker_host": null, "max_concurrent": 4, "health_interval_s": 10,
     "max_queue": 64}                                  # waiting + running; beyond: queue_full

``load(path)`` raises ``FnError("agent_config_invalid")`` with the offending key.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from meshagents.errors import FnError

_REQUIRED = (
    "device_id",
    "device_name",
    "manifest_path",
    "operator_key",
    "homeserver",
    "matrix_user",
    "matrix_password",
    "device_room",
    "approvals_room",
)


@dataclass(frozen=True)
class AgentConfig:
    device_id: str
    device_name: str
    manifest_path: Path
    operator_key: str
    homeserver: str
    matrix_user: str
    matrix_password: str = field(repr=False)
    device_room: str
    approvals_room: str
    data_dir: Path
    store_dir: Path
    audit_path: Path
    bot_users: tuple[str, ...] = ()
    hub_url: str | None = None
    skew_s: int = 30
    sandbox: bool = True
    keystore: str | None = None
    keys_dir: Path | None = None
    docker_host: str | None = None
    max_concurrent: int = 4
    max_queue: int = 64
    health_interval_s: float = 10.0
    #: Largest output kept in one Matrix event (an event is at most 64 KiB once encrypted).
    matrix_output_limit: int = 16_000

    @property
    def serials_path(self) -> Path:
        return self.data_dir / "serials.sqlite"

    @property
    def shipped_path(self) -> Path:
        return self.data_dir / "shipped.json"

    @property
    def snapshots_dir(self) -> Path:
        return self.data_dir / "snapshots"

    @property
    def rotations_path(self) -> Path:
        """The operator-key rotation statements this agent accepted (docs/protocol.md §8)."""
        return self.data_dir / "rotations.json"


def _str(data: dict[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise FnError("agent_config_invalid", f"config key {key!r} must be a non-empty string")
    return value


def _path(base: Path, value: Any, key: str) -> Path:
    if not isinstance(value, str) or not value:
        raise FnError("agent_config_invalid", f"config key {key!r} must be a path")
    p = Path(value)
    return p if p.is_absolute() else base / p


def from_dict(data: dict[str, Any], base: Path) -> AgentConfig:
    """Build the config from parsed JSON; relative paths resolve from ``base``."""
    if not isinstance(data, dict):
        raise FnError("agent_config_invalid", "the config must be a JSON object")
    for key in _REQUIRED:
        _str(data, key)
    data_dir = _path(base, data.get("data_dir", "."), "data_dir")
    bots = data.get("bot_users", [])
    if not isinstance(bots, list) or not all(isinstance(b, str) for b in bots):
        raise FnError("agent_config_invalid", "config key 'bot_users' must be a list of user ids")
    hub = data.get("hub_url")
    if hub is not None and not isinstance(hub, str):
        raise FnError("agent_config_invalid", "config key 'hub_url' must be a URL or null")
    ints: dict[str, int] = {}
    for key, default in (
        ("skew_s", 30), ("max_concurrent", 4), ("matrix_output_limit", 16_000), ("max_queue", 64),
    ):
        value = data.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise FnError("agent_config_invalid", f"config key {key!r} must be a non-negative integer")
        ints[key] = value
    interval = data.get("health_interval_s", 10.0)
    if isinstance(interval, bool) or not isinstance(interval, int | float) or interval <= 0:
        raise FnError("agent_config_invalid", "config key 'health_interval_s' must be a positive number")
    sandbox = data.get("sandbox", True)
    if not isinstance(sandbox, bool):
        raise FnError("agent_config_invalid", "config key 'sandbox' must be true or false")
    keystore = data.get("keystore")
    if keystore not in (None, "file", "pass"):
        raise FnError("agent_config_invalid", "config key 'keystore' must be 'file', 'pass' or null")
    return AgentConfig(
        device_id=data["device_id"],
        device_name=data["device_name"],
        manifest_path=_path(base, data["manifest_path"], "manifest_path"),
        operator_key=data["operator_key"],
        homeserver=data["homeserver"],
        matrix_user=data["matrix_user"],
        matrix_password=data["matrix_password"],
        device_room=data["device_room"],
        approvals_room=data["approvals_room"],
        data_dir=data_dir,
        store_dir=_path(base, data.get("store_dir", str(data_dir / "matrix-store")), "store_dir"),
        audit_path=_path(base, data.get("audit_path", str(data_dir / "audit.sqlite")), "audit_path"),
        bot_users=tuple(bots),
        hub_url=hub.rstrip("/") if hub else None,
        skew_s=ints["skew_s"],
        sandbox=sandbox,
        keystore=keystore,
        keys_dir=_path(base, data["keys_dir"], "keys_dir") if data.get("keys_dir") else None,
        docker_host=data.get("docker_host") if isinstance(data.get("docker_host"), str) else None,
        max_concurrent=max(1, ints["max_concurrent"]),
        max_queue=max(1, ints["max_queue"]),
        health_interval_s=float(interval),
        matrix_output_limit=max(1024, ints["matrix_output_limit"]),
    )


def load(path: Path) -> AgentConfig:
    """Read the config file at ``path``."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise FnError("agent_config_invalid", f"cannot read {path}: {exc.strerror}") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise FnError("agent_config_invalid", f"{path} is not JSON: {exc}") from exc
    return from_dict(data, path.resolve().parent)
