"""docker_container_enroll: map a container into its host's manifest (light) or make it a mesh peer (deep)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, Literal

from meshagents.docker import deep
from meshagents.docker.engine import connect, get_container
from meshagents.docker.manifest import container_room_alias, light_capabilities
from meshagents.docker.output import DEFAULT_CAP
from meshagents.docker.resolve import resolve_executables
from meshagents.docker.whitelist import invalid_entries, whitelist_risks
from meshagents.errors import FnError
from meshagents.runtime.catalog import function


@function(id="docker_container_enroll", group="docker", requires=["docker", "root", "wireguard"])
def docker_container_enroll(
    container: str,
    mode: Literal["light", "deep"] = "light",
    whitelist: list[str] | None = None,
    host: str | None = None,
    requires_approval: bool = False,
    timeout: int = 30,
    output_cap: int = DEFAULT_CAP,
    mesh_address: str | None = None,
    hub_public_key: str | None = None,
    hub_endpoint: str | None = None,
    allowed_ips: list[str] | None = None,
    keepalive: int = deep.DEFAULT_KEEPALIVE,
    host_netns: str | None = None,
    interface: str | None = None,
    docker_host: str | None = None,
) -> dict[str, Any]:
    """Light: manifest entries (whitelist resolved in the container). Deep: own WireGuard peer and room.

    Args:
        container: the container's name or id.
        mode: light: manifest capability entries for the host's agent to run things in the container; deep:
            the container becomes its own mesh peer (its own WireGuard interface and room).
        whitelist: light mode (required): executables the exec capability allows, bare names (looked up on the
            container's PATH) or absolute paths.
        host: light mode: device name of the container's host, to report its room alias #dev-<host>.
        requires_approval: light mode: make the exec capability require an operator's approval.
        timeout: light mode: the exec capability's time limit in seconds.
        output_cap: light mode: the exec capability's output limit in bytes.
        mesh_address: deep mode: the container's mesh address (e.g. 10.42.0.23, or with a prefix; /24
            assumed). Omit mesh_address, hub_public_key and hub_endpoint to only make (or show) the
            container's key; give all three to attach.
        hub_public_key: deep mode: the hub's base64 WireGuard public key.
        hub_endpoint: deep mode: the hub's WireGuard endpoint as ip:port or [v6]:port (an IP address, not a
            host name).
        allowed_ips: deep mode: networks routed to the hub inside the container (CIDR); default: the mesh
            subnet of mesh_address.
        keepalive: deep mode: persistent keepalive towards the hub in seconds (0-65535, 0 = off).
        host_netns: deep mode: path of the network namespace wireguard-go runs in, e.g. /run/netns/NAME (not a
            bare name); default: this process's namespace.
        interface: deep mode: name of the container's mesh interface (at most 15 of A-Z a-z 0-9 _ . -);
            default: mc<first 13 characters of the container id>.
        docker_host: the engine to talk to: a socket path (/var/run/docker.sock) or a URL (unix://...,
            tcp://host:2375); default: $DOCKER_HOST, else unix:///var/run/docker.sock.
    """
    if mode == "light":
        if not whitelist:
            raise FnError("rejected_args", "light mode needs a whitelist (--whitelist, repeat it)")
        bad = invalid_entries(whitelist)
        if bad:
            raise FnError("rejected_args", f"whitelist entries that can never match: {bad}", entries=bad)
    client = connect(docker_host)
    try:
        c = get_container(client, container)
        name, cid = c.name or container, c.id or ""
        if mode == "light":
            executables = resolve_executables(c, whitelist or [])
            return {
                "mode": "light",
                "container": name,
                "container_id": cid,
                "host_room_alias": f"#dev-{host}" if host else None,
                "capabilities": light_capabilities(
                    name,
                    executables,
                    requires_approval=requires_approval,
                    timeout_s=timeout,
                    output_cap=output_cap,
                ),
                "warnings": whitelist_risks(executables),
            }
        hub = (mesh_address, hub_public_key, hub_endpoint)
        if all(v is None for v in hub):
            # Step one of two: the key exists (and the hub can add the peer) before the
            # interface comes up, so the first handshake is not dropped.
            ident = deep.identity(name)
            return {
                "mode": "deep",
                "attached": False,
                "container": name,
                "container_id": cid,
                "device_id": f"cont-{name}",
                "public_key": ident.public_key,
                "room_alias": container_room_alias(name),
            }
        if any(v is None for v in hub):
            raise FnError(
                "bad_usage", "deep mode needs mesh_address, hub_public_key and hub_endpoint together"
            )
        assert mesh_address is not None and hub_public_key is not None and hub_endpoint is not None
        att = deep.attach(
            c,
            mesh_address=mesh_address,
            hub_public_key=hub_public_key,
            hub_endpoint=hub_endpoint,
            allowed_ips=allowed_ips,
            keepalive=keepalive,
            host_netns=host_netns,
            interface=interface,
        )
        return {"mode": "deep", "attached": True, "device_id": f"cont-{name}", **asdict(att)}
    finally:
        client.close()
