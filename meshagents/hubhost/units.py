"""Every systemd unit of a hub host, rendered by the one renderer
(:func:`meshagents.runtime.appspec.render_service`) from the apps' ``service:`` blocks
in their app.md and, for the parts that are not apps (Synapse, the host firewall),
from blocks of the same shape defined here (pure)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from meshagents.hubhost import firewall
from meshagents.hubhost import spec as S
from meshagents.runtime.appspec import load_app, render_service

APPS = ("wg_hub", "agents_and_robots", "agents_dashboard")
#: start order (upgrade restarts in this order, and stops in the reverse)
ORDER = (
    "meshagents-synapse",
    "meshagents-wg_hub",
    "meshagents-agents_and_robots",
    "meshagents-agents_dashboard",
)


def unit_name(app: str) -> str:
    return f"meshagents-{app}.service"


def app_service(app: str, code_root: Path, spec: S.HostSpec) -> dict[str, Any]:
    svc = dict(load_app(code_root / "meshagents" / "apps" / app).service or {})
    after = [
        a for a in svc.get("after", []) if a != "meshagents-synapse.service" or spec.matrix == "embedded"
    ]
    svc["after"] = [a.replace("meshagents-wg-wg0", f"meshagents-wg-{spec.interface}") for a in after]
    svc["working_directory"] = str(S.STATE)
    if app == "agents_dashboard":
        svc["exec"] = (
            f"fn app agents_dashboard --hub-api http://127.0.0.1:{spec.operator_port}"
            f" --bot-api http://127.0.0.1:{spec.bot_port} --port {spec.dashboard_port}"
            f" --host {spec.mesh_ip} --host 127.0.0.1"
        )
    if app == "agents_and_robots":
        svc["exec"] = f"fn app agents_and_robots --config {S.BOT_CONFIG}"
    if app == "wg_hub":
        svc["exec"] = f"fn app wg_hub --config {S.HUB_CONFIG}"
        svc["hardening"] = [h.replace("/etc/wireguard", str(S.WG_DIR)) for h in svc.get("hardening", [])]
    return svc


def synapse_service(spec: S.HostSpec) -> dict[str, Any]:
    py = S.SYNAPSE_VENV / "bin" / "python"
    return {
        "exec": f"{py} -m synapse.app.homeserver"
        f" --config-path {S.SYNAPSE_CONF} --config-path {S.SYNAPSE_SECRETS}",
        "user": S.SYNAPSE_USER,
        "group": S.SYNAPSE_USER,
        "restart": "on-failure",
        "environment": {"PYTHONUNBUFFERED": "1"},
        "after": ["network-online.target", "postgresql.service", f"meshagents-wg-{spec.interface}.service"],
        "requires": ["postgresql.service"],
        "state_directory": S.SYNAPSE_DATA.name,
        "working_directory": str(S.SYNAPSE_DATA),
        "capabilities": ["CapabilityBoundingSet="],
        "hardening": [
            "NoNewPrivileges=yes",
            "PrivateTmp=yes",
            "ProtectSystem=strict",
            "ProtectHome=yes",
            "PrivateDevices=yes",
            "ProtectKernelModules=yes",
            "ProtectKernelTunables=yes",
            "ProtectKernelLogs=yes",
            "ProtectControlGroups=yes",
            "ProtectClock=yes",
            "ProtectHostname=yes",
            "RestrictNamespaces=yes",
            "RestrictRealtime=yes",
            "RestrictSUIDSGID=yes",
            "LockPersonality=yes",
            "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
            "SystemCallArchitectures=native",
        ],
    }


def firewall_service() -> dict[str, Any]:
    return {
        "exec": f"/usr/sbin/nft -f {S.HOST_NFT}",
        "exec_stop": f"/usr/sbin/nft delete table inet {firewall.TABLE}",
        "type": "oneshot",
        "remain_after_exit": True,
        "user": "root",
        "restart": "no",
        "default_dependencies": False,
        "after": [],
        "before": ["network-pre.target", "shutdown.target"],
        "wanted_by": "sysinit.target",
        "unit_extra": ["Wants=network-pre.target", "Conflicts=shutdown.target"],
    }


def render_all(spec: S.HostSpec, code_root: Path) -> dict[str, str]:
    """unit file name -> text, for this host."""
    launcher = str(S.LAUNCHER)
    out: dict[str, str] = {}
    for app in APPS:
        spec_front = load_app(code_root / "meshagents" / "apps" / app).front
        out[unit_name(app)] = render_service(
            str(spec_front.get("summary", app)), app_service(app, code_root, spec), S.STATE, launcher=launcher
        )
    if spec.matrix == "embedded":
        out["meshagents-synapse.service"] = render_service(
            f"Synapse, the hub's Matrix homeserver ({spec.server_name}, PostgreSQL)",
            synapse_service(spec),
            S.SYNAPSE_DATA,
            launcher=launcher,
        )
    out["meshagents-firewall.service"] = render_service(
        "meshagents host firewall (nftables table inet meshagents_host)",
        firewall_service(),
        Path("/"),
        launcher=launcher,
    )
    return out


def launcher_script() -> str:
    """``/opt/meshagents/bin/fn``: the CLI of the current release, on the system python3."""
    cur = S.CURRENT
    return (
        "#!/bin/sh\n# written by provision_wg_hub: the fn of the current release (upgrade switches it)\n"
        f'export FN_PROJECT_ROOT={cur} PYTHONPATH="{cur}:{cur}/site"\n'
        'exec /usr/bin/python3 -m meshagents.runtime.cli "$@"\n'
    )
