"""The hub host's settings (from the pipeline's flags) and where everything lives on it (pure)."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from meshagents.errors import FnError

Tls = Literal["acme", "internal", "off"]
MatrixMode = Literal["embedded", "existing"]

USER = "meshagents"  # wg_hub, the bot and the dashboard
SYNAPSE_USER = "meshagents-synapse"  # Synapse and its PostgreSQL role (peer authentication)
SYNAPSE_DB = "meshagents_synapse"
OPT = Path("/opt/meshagents")
RELEASES = OPT / "releases"
CURRENT = OPT / "current"  # -> releases/<bundle id>; upgrade switches it, rollback switches back
LAUNCHER = OPT / "bin" / "fn"
SYNAPSE_VENV = OPT / "synapse"
ETC = Path("/etc/meshagents")
HUB_CONFIG = ETC / "wg_hub.toml"
HOST_NFT = ETC / "host.nft"
SYNAPSE_ETC = ETC / "synapse"
SYNAPSE_CONF = SYNAPSE_ETC / "homeserver.yaml"
SYNAPSE_SECRETS = SYNAPSE_ETC / "secrets.yaml"
SYNAPSE_LOG_CONF = SYNAPSE_ETC / "log.yaml"
REGISTRATION_SECRET = ETC / "matrix_registration_secret"  # Synapse (owner) and the hub (group) read it
SYNAPSE_DATA = Path("/var/lib/meshagents-synapse")
STATE = Path("/var/lib/meshagents")
BOT_CONFIG = STATE / "agents_and_robots" / "bot.toml"
MATRIX_SETTINGS = STATE / "matrix" / "settings.toml"
CADDYFILE = Path("/etc/caddy/Caddyfile")
CADDY_CA = Path("/var/lib/caddy/.local/share/caddy/pki/authorities/local/root.crt")
WG_DIR = Path("/etc/wireguard")
BACKUPS = Path("/var/backups/meshagents")

PACKAGES_BASE = ("python3", "wireguard-tools", "nftables", "iproute2", "git", "ca-certificates", "kmod")
PACKAGES_EMBEDDED = ("postgresql", "python3-venv")
PACKAGES_TLS = ("caddy",)

_DOMAIN = re.compile(
    r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)+$"
)
_LOCALPART = re.compile(r"^[a-z0-9._=/-]{1,64}$")


@dataclass(frozen=True)
class HostSpec:
    """What the operator asked for; every file on the host is a pure function of it."""

    server_name: str
    domain: str | None = None
    tls: Tls = "off"
    matrix: MatrixMode = "embedded"
    homeserver_url: str | None = None  # existing: the client-server API base URL the hub uses
    registration_secret_file: Path | None = None  # existing: on the host
    interface: str = "wg0"
    mesh_address: str = "10.42.0.1/24"
    listen_port: int = 51820
    public_port: int = 8443
    operator_port: int = 8000
    synapse_port: int = 8008
    dashboard_port: int = 8080
    bot_port: int = 8766
    ssh_port: int = 22
    operator: str = "operator"  # the operator's Matrix localpart
    bot: str = "bot"
    max_upload_mb: int = 50

    @property
    def mesh_ip(self) -> str:
        return str(ipaddress.ip_interface(self.mesh_address).ip)

    @property
    def mesh_subnet(self) -> str:
        return str(ipaddress.ip_interface(self.mesh_address).network)

    @property
    def operator_id(self) -> str:
        return f"@{self.operator}:{self.server_name}"

    @property
    def bot_id(self) -> str:
        return f"@{self.bot}:{self.server_name}"

    @property
    def local_homeserver(self) -> str:
        """Where the hub's own processes reach the homeserver."""
        if self.matrix == "existing":
            return str(self.homeserver_url)
        return f"http://127.0.0.1:{self.synapse_port}"

    @property
    def device_homeserver(self) -> str:
        """Where devices reach it: over the mesh (never the public internet) for the embedded one."""
        if self.matrix == "existing":
            return str(self.homeserver_url)
        return f"http://{self.mesh_ip}:{self.synapse_port}"

    @property
    def client_homeserver(self) -> str:
        """What Element is told (``.well-known``): https on the domain with TLS, else the mesh."""
        if self.tls != "off" and self.domain:
            return f"https://{self.domain}"
        return self.device_homeserver

    @property
    def enroll_url(self) -> str:
        if self.tls != "off" and self.domain:
            return f"https://{self.domain}"
        return ""  # the hub's own default: http://<public_host>:<public_port>


def make_spec(
    *,
    domain: str | None,
    tls: Tls | None,
    matrix: MatrixMode,
    server_name: str | None = None,
    homeserver_url: str | None = None,
    registration_secret_file: Path | None = None,
    **kw: object,
) -> HostSpec:
    """Check the flags together; a bad combination is ``bad_usage`` with the reason."""
    if domain is not None:
        domain = domain.strip().lower().rstrip(".")
        if not _DOMAIN.match(domain) and not _is_ip(domain):
            raise FnError("bad_domain", f"--domain {domain!r} is not a DNS name")
    chosen: Tls = tls or ("acme" if domain else "off")
    if chosen != "off" and not domain:
        raise FnError("bad_usage", f"--tls {chosen} needs --domain (the name Caddy serves)")
    if matrix == "existing":
        if not homeserver_url or not homeserver_url.startswith(("http://", "https://")):
            raise FnError("bad_usage", "--matrix existing needs --homeserver http(s)://...")
        if registration_secret_file is None:
            raise FnError(
                "bad_usage", "--matrix existing needs --registration-secret-file (a path on the hub)"
            )
    name = server_name or domain
    if not name:
        raise FnError("bad_usage", "give --domain (or --server-name): the Matrix server name of the hub")
    spec = HostSpec(
        server_name=name,
        domain=domain,
        tls=chosen,
        matrix=matrix,
        homeserver_url=homeserver_url,
        registration_secret_file=registration_secret_file,
        **kw,  # type: ignore[arg-type]
    )
    for who in (spec.operator, spec.bot):
        if not _LOCALPART.match(who):
            raise FnError("bad_usage", f"{who!r} is not a Matrix localpart (a-z 0-9 . _ = - /)")
    try:
        ipaddress.ip_interface(spec.mesh_address)
    except ValueError as exc:
        raise FnError("bad_usage", f"mesh address {spec.mesh_address!r}: {exc}") from exc
    return spec


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def packages(spec: HostSpec) -> list[str]:
    """The Debian packages this hub needs (bookworm has all of them, caddy 2.6 in main)."""
    out = list(PACKAGES_BASE)
    if spec.matrix == "embedded":
        out += PACKAGES_EMBEDDED
    if spec.tls != "off":
        out += PACKAGES_TLS
    return out
