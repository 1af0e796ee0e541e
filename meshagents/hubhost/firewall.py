"""The host's own nftables table ``inet meshagents_host`` (pure).

Input policy drop: only what must be public is open — WireGuard (UDP), SSH, and either
443 (+80 for ACME) in front of Synapse and /enroll when TLS is on, or the /enroll port
itself when it is off; everything else only from the mesh subnet on the mesh interface
(and loopback). It sits beside the WireGuard layer's per-interface table
(:mod:`meshagents.wg.firewall`), which keeps its own rules; a packet passes only when
both accept it. Loaded at boot by ``meshagents-firewall.service`` before the network.
"""

from __future__ import annotations

from meshagents.hubhost import spec as S

TABLE = "meshagents_host"


def public_tcp_ports(spec: S.HostSpec) -> list[int]:
    ports = {spec.ssh_port}
    if spec.tls == "acme":
        ports |= {80, 443}
    elif spec.tls == "internal":
        ports.add(443)
    else:
        ports.add(spec.public_port)
    return sorted(ports)


def rules(spec: S.HostSpec) -> str:
    """The whole file: an atomic replace script, so ``nft -f`` on it is idempotent."""
    tcp = ", ".join(str(p) for p in public_tcp_ports(spec))
    body = [
        f"table inet {TABLE} {{",
        "\tchain input {",
        "\t\ttype filter hook input priority filter + 10; policy drop;",
        "\t\tct state established,related accept",
        "\t\tct state invalid drop",
        '\t\tiifname "lo" accept',
        "\t\tmeta l4proto { icmp, ipv6-icmp } accept",
        "\t\tudp sport 67 udp dport 68 accept",
        "\t\tudp sport 547 udp dport 546 accept",
        f"\t\tudp dport {spec.listen_port} accept",
        f"\t\ttcp dport {{ {tcp} }} accept",
        f'\t\tiifname "{spec.interface}" ip saddr {spec.mesh_subnet} accept',
        "\t}",
        "}",
    ]
    head = [
        "# written by provision_wg_hub (meshagents/hubhost/firewall.py)",
        f"table inet {TABLE}",
        f"delete table inet {TABLE}",
    ]
    return "\n".join(head + body) + "\n"
