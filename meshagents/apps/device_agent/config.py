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

``load(path)`` raises ``FnError("agent_config_invalid")`` naming the file, the offending
key and the type expected (meshagents.configfile); the password is never echoed.

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
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, Strict, StrictBool, StrictInt, StrictStr

from meshagents.configfile import validate
from meshagents.errors import FnError
from meshagents.trust.paths import audit_path


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


Text = Annotated[StrictStr, Field(min_length=1)]
Count = Annotated[StrictInt, Field(ge=0)]
Seconds = Annotated[float, Strict(), Field(gt=0)]


class AgentConfigFile(BaseModel):
    """The file's shape as enrollment writes it (other keys are ignored); ``from_dict``
    turns it into an ``AgentConfig`` (paths resolved, limits applied)."""

    model_config = ConfigDict(extra="ignore")

    device_id: Text
    device_name: Text
    manifest_path: Text
    operator_key: Text
    homeserver: Text
    matrix_user: Text
    matrix_password: Text
    device_room: Text
    approvals_room: Text
    data_dir: Text = "."
    store_dir: Text | None = None
    audit_path: Text | None = None
    bot_users: list[StrictStr] = []
    hub_url: StrictStr | None = None
    skew_s: Count = 30
    max_concurrent: Count = 4
    matrix_output_limit: Count = 16_000
    checkpoint_every: Count = 100
    max_queue: Count = 64
    health_interval_s: Seconds = 10.0
    checkpoint_interval_s: Seconds = 600.0
    manifest_poll_s: Seconds = 30.0
    sandbox: StrictBool | Literal["weak"] = True
    keystore: Literal["file", "pass"] | None = None
    keys_dir: StrictStr | None = None
    docker_host: Any = None


def _path(base: Path, value: str) -> Path:
    p = Path(value)
    return p if p.is_absolute() else base / p


def from_dict(data: dict[str, Any], base: Path, source: str = "agent config") -> AgentConfig:
    """Build the config from parsed JSON; relative paths resolve from ``base``."""
    got = validate(AgentConfigFile, data, source=source, code="agent_config_invalid")
    data_dir = _path(base, got.data_dir)
    if got.audit_path is None:
        try:
            audit_file = audit_path(got.device_id)
        except FnError as exc:
            raise FnError(
                "agent_config_invalid", f"{source}: device_id: {exc.message}", file=source, key="device_id"
            ) from exc
    else:
        audit_file = _path(base, got.audit_path)
    return AgentConfig(
        device_id=got.device_id,
        device_name=got.device_name,
        manifest_path=_path(base, got.manifest_path),
        operator_key=got.operator_key,
        homeserver=got.homeserver,
        matrix_user=got.matrix_user,
        matrix_password=got.matrix_password,
        device_room=got.device_room,
        approvals_room=got.approvals_room,
        data_dir=data_dir,
        store_dir=_path(base, got.store_dir or str(data_dir / "matrix-store")),
        audit_path=audit_file,
        bot_users=tuple(got.bot_users),
        hub_url=got.hub_url.rstrip("/") if got.hub_url else None,
        skew_s=got.skew_s,
        sandbox=got.sandbox is True,
        keystore=got.keystore,
        keys_dir=_path(base, got.keys_dir) if got.keys_dir else None,
        docker_host=got.docker_host if isinstance(got.docker_host, str) else None,
        max_concurrent=max(1, got.max_concurrent),
        max_queue=max(1, got.max_queue),
        health_interval_s=float(got.health_interval_s),
        manifest_poll_s=float(got.manifest_poll_s),
        matrix_output_limit=max(1024, got.matrix_output_limit),
        checkpoint_every=max(1, got.checkpoint_every),
        checkpoint_interval_s=float(got.checkpoint_interval_s),
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
    cfg = from_dict(data, path.resolve().parent, str(path))
    return dataclasses.replace(cfg, config_path=path.resolve())
