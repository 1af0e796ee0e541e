"""hub_host_apply: make this Debian host the whole hub, one part per call, changing only what differs."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from meshagents.runtime.catalog import function

Part = Literal[
    "packages", "release", "base", "firewall", "synapse", "tls", "matrix", "services", "service_user"
]


@function(id="hub_host_apply", group="hub", requires=["root"])
def hub_host_apply(
    part: Part,
    domain: str | None = None,
    tls: Literal["acme", "internal", "off"] | None = None,
    matrix: Literal["embedded", "existing"] = "embedded",
    server_name: str | None = None,
    homeserver: str | None = None,
    registration_secret_file: Path | None = None,
    interface: str = "wg0",
    mesh_address: str = "10.42.0.1/24",
    listen_port: int = 51820,
    public_port: int = 8443,
    operator_port: int = 8000,
    ssh_port: int = 22,
    operator: str = "operator",
    operator_key: str | None = None,
    wheels_dir: Path | None = None,
    config_dir: Path = Path("/etc/wireguard"),
    hub_config: Path = Path("/etc/meshagents/wg_hub.toml"),
) -> dict[str, Any]:
    """One part of the production hub (provision_wg_hub --host runs them in order); reports changed/restarted.

    Args:
        part: packages (apt), release (this bundle into /opt/meshagents), base (users, directories),
            firewall (nftables table inet meshagents_host and its boot unit), synapse (venv, PostgreSQL,
            config, unit), tls (Caddy), matrix (settings, the bot's and the operator's accounts, bot.toml),
            services (the meshagents-*.service units, started or restarted only when their inputs changed);
            service_user: on a single box (provision_wg_hub without --host) the wg_hub unit's system
            user, owning the hub's state, its WireGuard config_dir and hub_config (no other flag used).
        domain: the hub's public DNS name; with TLS Caddy serves https://<domain> (Synapse, /enroll and
            .well-known/matrix/client). Also the Matrix server name unless server_name is given.
        tls: acme (a public certificate, ports 80/443), internal (Caddy's own CA, pinned by clients), off;
            default acme with a domain, else off.
        matrix: embedded (Synapse on PostgreSQL on this host) or existing (bring your own homeserver).
        server_name: the Matrix server name (what follows ':' in user ids); default: domain.
        homeserver: with matrix existing, the homeserver's client API base URL as this host reaches it.
        registration_secret_file: with matrix existing, a file on this host holding the homeserver's
            registration_shared_secret (0600).
        interface: the mesh interface set up by wg_hub_setup.
        mesh_address: the hub's mesh address with prefix (as given to wg_hub_setup).
        listen_port: the WireGuard UDP port (public).
        public_port: the /enroll listener's port (public without TLS; behind Caddy on loopback with it).
        operator_port: the operator API's port (mesh and loopback only).
        ssh_port: the SSH port kept public by the host firewall (do not lock yourself out).
        operator: the operator's Matrix localpart (@<operator>:<server_name>), an admin of the homeserver.
        operator_key: base64 ed25519 operator public key (the bot checks manifests against it); part matrix.
        wheels_dir: with part synapse, the directory of shipped Synapse wheels on this host.
        config_dir: with part service_user, the hub's WireGuard config directory.
        hub_config: with part service_user, the wg_hub service's config file.
    """
    import os

    from meshagents.hubhost import apply
    from meshagents.hubhost.spec import make_spec
    from meshagents.state import project_root

    if part == "service_user":
        return apply.local_service_user(config_dir, hub_config, project_root())
    spec = make_spec(
        domain=domain, tls=tls, matrix=matrix, server_name=server_name, homeserver_url=homeserver,
        registration_secret_file=registration_secret_file, interface=interface, mesh_address=mesh_address,
        listen_port=listen_port, public_port=public_port, operator_port=operator_port, ssh_port=ssh_port,
        operator=operator,
    )  # fmt: skip
    os.environ.setdefault("FN_PROJECT_ROOT", str(project_root()))
    if part == "packages":
        return apply.packages(spec)
    if part == "release":
        return apply.release(project_root())
    if part == "base":
        return apply.base(spec)
    if part == "firewall":
        return apply.apply_firewall(spec)
    if part == "synapse":
        return apply.synapse(spec, wheels_dir)
    if part == "tls":
        return apply.tls(spec)
    if part == "matrix":
        from meshagents.errors import FnError

        if not operator_key:
            raise FnError("bad_usage", "part matrix needs --operator-key (the operator's public key)")
        return apply.matrix(spec, operator_key)
    return apply.services(spec)
