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
     "skew_s": 30, "sandbox": true | "weak",         # weak: no bubblewrap, said so everywhere
     "data_dir": ".",                                 # relative to the file
     "audit_path": null,      # default <FN_STATE_DIR>/audit/<device_id>.sqlite: the ONE place
                              # device_audit_verify_chain looks (set it only for tests)
     "checkpoint_every": 100, "checkpoint_interval_s": 600,   # local signed checkpoints
     "keystore": "file" | "pass" | null, "keys_dir": null,
     "docker_host": null, "max_concurrent": 4, "health_interval_s": 10,
     "manifest_poll_s": 30,                          # re-issued manifests (renewal.py)
     "max_queue": 64}                                # waiting + running; beyond: queue_full

The audit chain's location is decided once, in ``meshagents.trust.paths.audit_path``:
``<FN_STATE_DIR>/audit/<device_id>.sqlite``, with its signed checkpoints and manifest
history beside it (``<device_id>.checkpoints.jsonl``, ``<device_id>.manifests.jsonl``).
The agent signs a checkpoint every ``checkpoint_every`` entries, every
``checkpoint_interval_s`` seconds when something was appended, and at a clean stop.

``load(path)`` raises ``FnError("agent_config_invalid")`` with the offending key.

``sandbox``: ``true`` (the default) means the hardened bubblewrap sandbox, and the agent
refuses to start (``sandbox_unavailable``) where it cannot run one. Only ``"weak"``
(or the older ``false``) runs commands without it: rlimits and a process group, no
isolation; ``!help`` and the dashboard then show the device as unsandboxed.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from meshagents.errors import FnError
from meshagents.trust.paths import audit_path

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
    checkpoint_every: int = 100
    checkpoint_interval_s: float = 600.0
    #: How often the hub is asked for a re-issued manifest (renewal.py).
    manifest_poll_s: float = 30.0
    #: Largest output kept in one Matrix event (an event is at most 64 KiB once encrypted).
    matrix_output_limit: int = 16_000
    #: the file this config was read from (None when built from a dict)
    config_path: Path | None = None

    @property
    def sandbox_mode(self) -> str:
        """``bwrap`` (hardened) or ``weak`` (no isolation, explicitly configured)."""
        return "bwrap" if self.sandbox else "weak"

    def protected_paths(self) -> tuple[str, ...]:
        """What no capability may reach: state dir, config, manifest, audit store (the chain, its
        checkpoint file and manifest history beside it), keys."""
        from meshagents.trust.checkpoints import checkpoints_path, manifests_path

        paths = [self.data_dir, self.store_dir, self.audit_path, checkpoints_path(self.audit_path),
                 manifests_path(self.audit_path), self.manifest_path, self.serials_path]
        paths += [p for p in (self.config_path, self.keys_dir) if p is not None]
        out: list[str] = []
        for p in paths:
            text = os.path.normpath(os.path.abspath(str(p)))
            if text not in out:
                out.append(text)
        return tuple(out)

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
        ("skew_s", 30),
        ("max_concurrent", 4),
        ("matrix_output_limit", 16_000),
        ("checkpoint_every", 100),
        ("max_queue", 64),
    ):
        value = data.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise FnError("agent_config_invalid", f"config key {key!r} must be a non-negative integer")
        ints[key] = value
    interval = data.get("health_interval_s", 10.0)
    if isinstance(interval, bool) or not isinstance(interval, int | float) or interval <= 0:
        raise FnError("agent_config_invalid", "config key 'health_interval_s' must be a positive number")
    cp_interval = data.get("checkpoint_interval_s", 600.0)
    if isinstance(cp_interval, bool) or not isinstance(cp_interval, int | float) or cp_interval <= 0:
        raise FnError("agent_config_invalid", "config key 'checkpoint_interval_s' must be a positive number")
    audit = data.get("audit_path")
    if audit is None:
        try:
            audit_file = audit_path(data["device_id"])
        except FnError as exc:
            raise FnError("agent_config_invalid", f"config key 'device_id': {exc.message}") from exc
    else:
        audit_file = _path(base, audit, "audit_path")
    poll = data.get("manifest_poll_s", 30.0)
    if isinstance(poll, bool) or not isinstance(poll, int | float) or poll <= 0:
        raise FnError("agent_config_invalid", "config key 'manifest_poll_s' must be a positive number")
    sandbox = data.get("sandbox", True)
    if sandbox == "weak":
        sandbox = False
    if not isinstance(sandbox, bool):
        raise FnError("agent_config_invalid", "config key 'sandbox' must be true or \"weak\"")
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
        audit_path=audit_file,
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
        manifest_poll_s=float(poll),
        matrix_output_limit=max(1024, ints["matrix_output_limit"]),
        checkpoint_every=max(1, ints["checkpoint_every"]),
        checkpoint_interval_s=float(cp_interval),
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
    return dataclasses.replace(from_dict(data, path.resolve().parent), config_path=path.resolve())
