"""The hub's configuration: a frozen pydantic model from a TOML, JSON or YAML file (and flags).

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

A bad file is refused whole with ``config_invalid``, naming the file, the key and the
type expected (meshagents.configfile).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, Strict, StrictBool, StrictInt, StrictStr, model_validator

from meshagents.configfile import read_mapping, validate
from meshagents.state import state_dir

PROFILES_DIR = Path(__file__).resolve().parent / "profiles"

Port = Annotated[StrictInt, Field(gt=0, lt=65536)]
Names = tuple[StrictStr, ...]


class MatrixConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    homeserver_url: StrictStr
    server_name: StrictStr
    room_alias_prefix: StrictStr = "dev-"


class HubConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    interface: StrictStr = "wg0"
    config_dir: Path = Path("/etc/wireguard")
    netns: StrictStr | None = None
    public_host: StrictStr = "0.0.0.0"  # noqa: S104 - /enroll is the one public endpoint by design
    public_port: Port = 8443
    operator_port: Port = 8000
    operator_hosts: Names = ()  # default: the hub's mesh address and 127.0.0.1
    endpoint: StrictStr | None = None  # WireGuard endpoint host:port given to devices
    public_url: StrictStr | None = None  # the /enroll base URL written into tokens
    approvers: Names = ()
    controllers: Names = ()  # extra controller public keys beside controller/ed25519
    manifest_key: StrictStr = "operator/ed25519"  # key store name of the manifest signing key
    # "hub": signed at /enroll; "offline": the operator signs later
    manifest_signing: Literal["hub", "offline"] = "hub"
    operator_public_key: StrictStr | None = None  # offline: the operator key to check against (else pinned)
    manifest_ttl_s: StrictInt = 365 * 86400
    preshared: StrictBool = True
    matrix_server_name: StrictStr = "localhost"
    matrix: MatrixConfig | None = None
    events_period_s: Annotated[float, Strict(), Field(gt=0)] = 3.0
    profiles_dir: Path = PROFILES_DIR
    state_dir: Path | None = None
    api_token_name: StrictStr = "wg_hub/api_token"  # noqa: S105 - a key store name, not a secret
    refuse_window_s: StrictInt = 600  # how long after enrollment a device may report a bad manifest
    install_dir: Path | None = None  # install bundles served at /install (default <hub state>/install)

    @model_validator(mode="after")
    def _separate_sockets(self) -> HubConfig:
        if self.public_port == self.operator_port:
            raise ValueError("public_port and operator_port must differ (separate sockets)")
        return self

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


def from_dict(data: dict[str, Any], source: str = "hub config") -> HubConfig:
    return validate(HubConfig, data, source=source, code="config_invalid")


def load(path: Path | None, overrides: dict[str, Any] | None = None) -> HubConfig:
    data: dict[str, Any] = {} if path is None else read_mapping(path, code="config_invalid")
    data.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return from_dict(data, str(path) if path is not None else "hub config")
