"""hub_config_write: write the wg_hub service's config file (TOML), idempotently.

The file is merged, not rewritten (:mod:`meshagents.hubhost.tomlmerge`): only the keys
given here are set, so keys and tables the operator added by hand (a ``[matrix]``
table, ``profiles_dir``, comments) survive a re-run, and an unchanged file is not
touched at all."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from meshagents.errors import FnError
from meshagents.fsutil import write_atomic
from meshagents.runtime.catalog import function

HEADER = "# wg_hub service config, written by hub_config_write (see docs/hub.md); hand edits are kept"


def render(values: dict[str, Any], existing: str | None = None) -> tuple[str, list[str]]:
    """(TOML text, changed keys): ``values`` merged into ``existing`` (None values are left alone)."""
    from meshagents.hubhost.tomlmerge import merge

    return merge(existing, {k: v for k, v in sorted(values.items()) if v is not None}, header=HEADER)



@function(id="hub_config_write", group="hub")
def hub_config_write(
    path: Path = Path("/etc/meshagents/wg_hub.toml"),
    interface: str = "wg0",
    config_dir: Path = Path("/etc/wireguard"),
    public_host: str = "0.0.0.0",  # noqa: S104 - /enroll is public by design
    public_port: int = 8443,
    operator_port: int = 8000,
    endpoint: str | None = None,
    public_url: str | None = None,
    approvers: list[str] | None = None,
    events_period_s: float = 3.0,
    manifest_signing: Literal["hub", "offline"] = "hub",
    operator_public_key: str | None = None,
    matrix_server_name: str | None = None,
    matrix_homeserver_url: str | None = None,
) -> dict[str, Any]:
    """Write the hub service config (0600); reports changed=false when it already says the same.

    Args:
        path: where to write the TOML config (mode 0600, its directory made 0700).
        interface: the hub's mesh interface, as set up by wg_hub_setup.
        config_dir: directory of the hub's WireGuard config and peer ledger, as given to wg_hub_setup.
        public_host: underlay address the public enrollment server (/enroll) binds to; 0.0.0.0 = every
            address. A specific address is also the WireGuard endpoint host when none is recorded.
        public_port: TCP port of the public enrollment server (1-65535, not operator_port).
        operator_port: TCP port of the operator API and /healthz, bound only on the hub's mesh address and
            loopback (1-65535, not public_port).
        endpoint: WireGuard endpoint host:port given to enrolling devices (e.g. vps.example.org:51820);
            default: the one wg_hub_setup recorded, else <public_host>:<listen port> when public_host is a
            specific address.
        public_url: base URL of /enroll written into the tokens the hub makes, with scheme, e.g.
            https://hub.example.org:8443; default: http://<public_host>:<public_port>.
        approvers: Matrix user ids (@user:server) whose approval counts, written into every manifest the hub
            issues; default: none.
        events_period_s: seconds between the hub's polls of WireGuard peer stats, published as peer_stats
            events while someone listens (> 0).
        manifest_signing: hub: the hub signs each manifest at enrollment with the operator key in its key
            store; offline: manifests wait unsigned (hub_manifests_pending) until the operator signs them
            elsewhere and posts them (hub_manifest_submit).
        operator_public_key: base64 ed25519 operator public key the hub checks offline-signed manifests
            against; required with manifest_signing offline.
        matrix_server_name: the Matrix server name (user ids @dev-<name>:<this>); also sets the [matrix]
            table's server_name when matrix_homeserver_url is given.
        matrix_homeserver_url: the homeserver URL devices are given (e.g. http://10.42.0.1:8008, over the
            mesh); with it the hub provisions each device's Matrix account and room ([matrix] table).
    """
    for name, port in (("public_port", public_port), ("operator_port", operator_port)):
        if not 0 < port < 65536:
            raise FnError("invalid_port", f"{name} {port} out of range")
    if manifest_signing == "offline" and not operator_public_key:
        raise FnError("bad_usage", "offline manifest signing needs --operator-public-key")
    if public_port == operator_port:
        raise FnError("bad_usage", "public and operator ports must differ")
    values: dict[str, Any] = {
        "interface": interface,
        "config_dir": str(config_dir),
        "public_host": public_host,
        "public_port": public_port,
        "operator_port": operator_port,
        "endpoint": endpoint,
        "public_url": public_url,
        "approvers": list(approvers or []),
        "events_period_s": float(events_period_s),
        "manifest_signing": manifest_signing,
        "operator_public_key": operator_public_key,
        "matrix_server_name": matrix_server_name,
    }
    if matrix_homeserver_url:
        values["matrix.homeserver_url"] = matrix_homeserver_url
        values["matrix.server_name"] = matrix_server_name or "localhost"
    old = path.read_text(encoding="utf-8") if path.exists() else None
    text, changed = render(values, old)
    if old != text:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_atomic(path, text, fsync=False, keep_owner=True)  # the hub host's service user reads it
    return {"path": str(path), "changed": old != text, "changed_keys": changed}
