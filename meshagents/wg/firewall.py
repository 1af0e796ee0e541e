"""The hub's nftables rules: rendered as text (pure), applied atomically with ``nft -f``.

One table per mesh interface (``inet meshagents_<iface>``) so several hubs, or test
runs, never touch each other's rules. Input policy stays ``accept`` (we never lock an
operator out of SSH); what we add: WireGuard's UDP port open, the hub's service ports
(API, homeserver, dashboard) accepted only from the mesh subnet on the mesh interface
(and on loopback, for the hub's own processes) and dropped everywhere else;
forwarding inside the mesh accepted, from the mesh to anywhere else dropped (a hub is
not an exit node).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from meshagents.wg.netns import run

DEFAULT_SERVICE_PORTS = (8000, 8008, 8080)


def table_name(interface: str) -> str:
    return "meshagents_" + re.sub(r"[^A-Za-z0-9_]", "_", interface)


def render_rules(
    *, interface: str, subnet: str, listen_port: int, service_ports: Sequence[int] = DEFAULT_SERVICE_PORTS
) -> str:
    """The table definition (no flush/delete lines)."""
    t = table_name(interface)
    ports = ", ".join(str(p) for p in sorted(set(service_ports)))
    lines = [
        f"table inet {t} {{",
        "\tchain input {",
        "\t\ttype filter hook input priority filter; policy accept;",
        f"\t\tudp dport {listen_port} accept",
    ]
    if ports:
        lines += [
            # the hub's own processes talk to each other over loopback (bot -> homeserver)
            f'\t\tiifname "lo" tcp dport {{ {ports} }} accept',
            f'\t\tiifname "{interface}" ip saddr {subnet} tcp dport {{ {ports} }} accept',
            f"\t\ttcp dport {{ {ports} }} drop",
        ]
    lines += [
        "\t}",
        "\tchain forward {",
        "\t\ttype filter hook forward priority filter; policy accept;",
        f'\t\tiifname "{interface}" oifname "{interface}" ip saddr {subnet} accept',
        f'\t\tiifname "{interface}" drop',
        "\t}",
        "}",
    ]
    return "\n".join(lines) + "\n"


def apply_script(interface: str, rules: str) -> str:
    """Replace the table atomically: declare (so delete never fails), delete, define."""
    t = table_name(interface)
    return f"table inet {t}\ndelete table inet {t}\n{rules}"


def table_present(interface: str, netns: str | None) -> bool:
    return run(["nft", "list", "table", "inet", table_name(interface)], netns, check=False).returncode == 0


def apply(interface: str, rules: str, netns: str | None) -> None:
    run(["nft", "-f", "-"], netns, input_text=apply_script(interface, rules))


def remove(interface: str, netns: str | None) -> bool:
    if not table_present(interface, netns):
        return False
    run(["nft", "delete", "table", "inet", table_name(interface)], netns)
    return True
