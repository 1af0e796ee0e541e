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

import json
import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from meshagents.configfile import validate
from meshagents.errors import FnError
from meshagents.trust.paths import audit_path

Text = Annotated[StrictStr, Field(min_length=1)]
Count = Annotated[StrictInt, Field(ge=0)]
Seconds = Annotated[float, Strict(), Field(gt=0)]
_PATHS = ("manifest_path", "data_dir", "store_dir", "audit_path", "keys_dir")
_FLOORS = {"max_concurrent": 1, "max_queue": 1, "checkpoint_every": 1, "matrix_output_limit": 1024}


class AgentConfig(BaseModel):
    """The agent's config, validated from the file (other keys are ignored) with relative
    paths resolved from the file's directory (``context={"base": dir}``)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    device_id: Text
    device_name: Text
    manifest_path: Path
    operator_key: Text
    homeserver: Text
    matrix_user: Text
    matrix_password: Text = Field(repr=False)
    device_room: Text
    approvals_room: Text
    data_dir: Path = Path(".")
    store_dir: Path
    audit_path: Path
    bot_users: tuple[StrictStr, ...] = ()
    hub_url: StrictStr | None = None
    skew_s: Count = 30
    #: true: the bubblewrap sandbox; the file says ``"weak"`` (or false) for none
    sandbox: StrictBool = True
    keystore: Literal["file", "pass"] | None = None
    keys_dir: Path | None = None
    docker_host: StrictStr | None = None
    max_concurrent: Count = 4
    max_queue: Count = 64
    health_interval_s: Seconds = 10.0
    checkpoint_every: Count = 100
    checkpoint_interval_s: Seconds = 600.0
    #: How often the hub is asked for a re-issued manifest (renewal.py).
    manifest_poll_s: Seconds = 30.0
    #: Largest output kept in one Matrix event (an event is at most 64 KiB once encrypted).
    matrix_output_limit: Count = 16_000
    #: the file this config was read from (None when built from a dict)
    config_path: Path | None = None

    @model_validator(mode="before")
    @classmethod
    def _defaults(cls, data: Any) -> Any:
        """Defaults that depend on other keys, and the file's looser spellings."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        data_dir = data.setdefault("data_dir", ".")  # relative to the file, like the others
        if "store_dir" not in data and isinstance(data_dir, str) and data_dir:
            data["store_dir"] = str(Path(data_dir) / "matrix-store")
        if data.get("audit_path") is None and isinstance(data.get("device_id"), str) and data["device_id"]:
            try:
                data["audit_path"] = audit_path(data["device_id"])
            except FnError as exc:
                raise ValueError(f"a usable device_id ({exc.message})") from None
        if data.get("sandbox") == "weak":
            data["sandbox"] = False
        if not data.get("keys_dir"):
            data.pop("keys_dir", None)
        if not isinstance(data.get("docker_host"), str):
            data.pop("docker_host", None)
        if isinstance(data.get("hub_url"), str):
            data["hub_url"] = data["hub_url"].rstrip("/") or None
        return data

    @field_validator(*_PATHS, mode="before")
    @classmethod
    def _relative(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, Path):
            return value
        if not isinstance(value, str) or not value:
            raise ValueError("a path")
        path = Path(value)
        base = (info.context or {}).get("base")
        return path if path.is_absolute() or base is None else Path(base) / path

    @field_validator(*_FLOORS)
    @classmethod
    def _floor(cls, value: int, info: ValidationInfo) -> int:
        """Values below a usable minimum are raised to it (0 workers would never run)."""
        return max(_FLOORS[str(info.field_name)], value)

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


def from_dict(data: dict[str, Any], base: Path, source: str = "agent config") -> AgentConfig:
    """Build the config from parsed JSON; relative paths resolve from ``base``."""
    return validate(AgentConfig, data, source=source, code="agent_config_invalid", context={"base": base})


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
    return cfg.model_copy(update={"config_path": path.resolve()})
