"""The hub's configuration: a frozen dataclass from a TOML, JSON or YAML file (and flags).

Every field has a default that suits a single VPS hub with the WireGuard layer's
defaults (``wg0``, ``/etc/wireguard``, mesh ``10.42.0.1/24``). Example (TOML)::

    interface = "wg0"
    public_host = "203.0.113.7"      # the underlay address /enroll listens on
    public_port = 8443
    operator_port = 8000             # on the mesh address and loopback only
    approvers = ["@operator:hub.example"]
    events_period_s = 3.0
    [matrix]                         # optional: provision the device's Matrix account and room
    homeserver_url = "http://10.42.0.1:8008"
    server_name = "hub.example"
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from meshagents.errors import FnError
from meshagents.state import state_dir

PROFILES_DIR = Path(__file__).resolve().parent / "profiles"


@dataclass(frozen=True)
class MatrixConfig:
    homeserver_url: str
    server_name: str
    room_alias_prefix: str = "dev-"


@dataclass(frozen=True)
class HubConfig:
    interface: str = "wg0"
    config_dir: Path = Path("/etc/wireguard")
    netns: str | None = None
    public_host: str = "0.0.0.0"  # noqa: S104 - /enroll is the one public endpoint by design
    public_port: int = 8443
    operator_port: int = 8000
    operator_hosts: tuple[str, ...] = ()  # default: the hub's mesh address and 127.0.0.1
    endpoint: str | None = None  # WireGuard endpoint host:port given to devices
    public_url: str | None = None  # the /enroll base URL written into tokens
    approvers: tuple[str, ...] = ()
    controllers: tuple[str, ...] = ()  # extra controller public keys beside controller/ed25519
    manifest_key: str = "operator/ed25519"  # key store name of the manifest signing key
    manifest_signing: str = "hub"  # "hub": signed at /enroll; "offline": the operator signs later
    operator_public_key: str | None = None  # offline: the operator key to check against (else pinned)
    manifest_ttl_s: int = 365 * 86400
    preshared: bool = True
    matrix_server_name: str = "localhost"
    matrix: MatrixConfig | None = None
    events_period_s: float = 3.0
    profiles_dir: Path = PROFILES_DIR
    state_dir: Path | None = None
    api_token_name: str = "wg_hub/api_token"  # noqa: S105 - a key store name, not a secret
    refuse_window_s: int = 600  # how long after enrollment a device may report a bad manifest
    install_dir: Path | None = None  # install bundles served at /install (default <hub state>/install)

    @property
    def hub_state(self) -> Path:
        return self.state_dir or state_dir() / "wg_hub"

    @property
    def install_root(self) -> Path:
        return self.install_dir or self.hub_state / "install"

    @property
    def db_path(self) -> Path:
        return self.hub_state / "operations.db"

    def enroll_url(self) -> str:
        if self.public_url:
            return self.public_url.rstrip("/")
        return f"http://{self.public_host}:{self.public_port}"

    def enroll_url_is_loopback(self) -> bool:
        from meshagents.inputs import is_loopback_host, url_host

        return is_loopback_host(url_host(self.enroll_url()))


_TUPLES = {"operator_hosts", "approvers", "controllers"}
_PATHS = {"config_dir", "profiles_dir", "state_dir", "install_dir"}


def from_dict(data: dict[str, Any]) -> HubConfig:
    known = {f.name for f in dataclasses.fields(HubConfig)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise FnError("config_invalid", f"unknown hub config keys: {', '.join(unknown)}")
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        if value is None:
            kwargs[key] = None
        elif key in _TUPLES:
            if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
                raise FnError("config_invalid", f"{key} must be a list of strings")
            kwargs[key] = tuple(value)
        elif key in _PATHS:
            kwargs[key] = Path(str(value))
        elif key == "matrix":
            if not isinstance(value, dict):
                raise FnError("config_invalid", "matrix must be a table")
            try:
                kwargs[key] = MatrixConfig(**value)
            except TypeError as exc:
                raise FnError("config_invalid", f"matrix: {exc}") from exc
        else:
            kwargs[key] = value
    cfg = HubConfig(**kwargs)
    for name in ("public_port", "operator_port"):
        port = getattr(cfg, name)
        if not isinstance(port, int) or not 0 < port < 65536:
            raise FnError("config_invalid", f"{name} must be a port number")
    if cfg.public_port == cfg.operator_port:
        raise FnError("config_invalid", "public_port and operator_port must differ (separate sockets)")
    if cfg.manifest_signing not in ("hub", "offline"):
        raise FnError("config_invalid", "manifest_signing must be 'hub' or 'offline'")
    if not isinstance(cfg.events_period_s, int | float) or cfg.events_period_s <= 0:
        raise FnError("config_invalid", "events_period_s must be positive")
    return cfg


def load(path: Path | None, overrides: dict[str, Any] | None = None) -> HubConfig:
    data: dict[str, Any] = {}
    if path is not None:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise FnError("config_unreadable", f"cannot read {path}: {exc.strerror}") from exc
        try:
            if path.suffix == ".toml":
                data = tomllib.loads(text)
            elif path.suffix == ".json":
                data = json.loads(text)
            else:
                data = yaml.safe_load(text) or {}
        except (tomllib.TOMLDecodeError, json.JSONDecodeError, yaml.YAMLError) as exc:
            raise FnError("config_invalid", f"{path}: {exc}") from exc
        if not isinstance(data, dict):
            raise FnError("config_invalid", f"{path}: not a mapping")
    data.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return from_dict(data)
