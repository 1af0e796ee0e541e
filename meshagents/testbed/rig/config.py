"""What the rig writes for each part, rendered as text or data (pure, no I/O).

    hub_toml(HubSettings(...))           -> wg_hub.toml
    matrix_settings_toml(...)            -> <hub state>/matrix/settings.toml
    bot_toml(...)                        -> <hub state>/agents_and_robots/bot.toml
    agent_config(...)                    -> <device state>/device_agent/config.json (a dict)
    demo_profile(workstation)            -> the "demo" capability profile (a dict)
    connection_info(...)                 -> <state>/demo/connection.json (a dict, 0600)

The layout these encode (docs/demo.md): every service runs in the hub namespace and
listens on the hub's mesh address 10.42.0.1 (Synapse 8008, hub API 8000, dashboard
8080) and loopback; the bot's control API on loopback 8766; /enroll on the underlay
198.19.0.1:8443. Devices reach everything over WireGuard.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from meshagents.testbed.rig.names import HUB_MESH, HUB_UNDERLAY

SYNAPSE_PORT = 8008
HUB_API_PORT = 8000
DASHBOARD_PORT = 8080
BOT_API_PORT = 8766
ENROLL_PORT = 8443
WG_PORT = 51820
SERVER_NAME = "hub.mesh"
APPROVALS_ALIAS = "operator-approvals"


def _q(value: str) -> str:
    """A TOML basic string (JSON's escaping is a subset TOML accepts)."""
    return json.dumps(value, ensure_ascii=False)


def _qlist(values: list[str] | tuple[str, ...]) -> str:
    return "[" + ", ".join(_q(v) for v in values) + "]"


def room_alias(localpart: str, server_name: str = SERVER_NAME) -> str:
    return f"#{localpart}:{server_name}"


def device_alias(device: str, server_name: str = SERVER_NAME) -> str:
    return room_alias(f"dev-{device}", server_name)


@dataclass(frozen=True)
class HubSettings:
    interface: str
    config_dir: str
    netns: str
    approvers: tuple[str, ...]
    profiles_dir: str
    state_dir: str
    server_name: str = SERVER_NAME
    events_period_s: float = 1.0


def hub_toml(s: HubSettings) -> str:
    lines = [
        f"interface = {_q(s.interface)}",
        f"config_dir = {_q(s.config_dir)}",
        f"netns = {_q(s.netns)}",
        f"public_host = {_q(HUB_UNDERLAY)}",
        f"public_port = {ENROLL_PORT}",
        f"public_url = {_q(f'http://{HUB_UNDERLAY}:{ENROLL_PORT}')}",
        f"operator_port = {HUB_API_PORT}",
        f"operator_hosts = {_qlist([HUB_MESH, '127.0.0.1'])}",
        f"endpoint = {_q(f'{HUB_UNDERLAY}:{WG_PORT}')}",
        f"approvers = {_qlist(s.approvers)}",
        f"events_period_s = {s.events_period_s}",
        f"profiles_dir = {_q(s.profiles_dir)}",
        f"state_dir = {_q(s.state_dir)}",
        f"matrix_server_name = {_q(s.server_name)}",
        "",
        "[matrix]",
        f"homeserver_url = {_q(homeserver_url())}",
        f"server_name = {_q(s.server_name)}",
    ]
    return "\n".join(lines) + "\n"


def homeserver_url() -> str:
    """Synapse as the hub and the devices see it: the hub's mesh address."""
    return f"http://{HUB_MESH}:{SYNAPSE_PORT}"


def matrix_settings_toml(*, operators: list[str], bot: str, secret_file: str, server_name: str) -> str:
    return (
        "\n".join(
            [
                f"homeserver = {_q(homeserver_url())}",
                f"server_name = {_q(server_name)}",
                f"operators = {_qlist(operators)}",
                f"bot = {_q(bot)}",
                'actor = "bot"',
                f"registration_shared_secret_file = {_q(secret_file)}",
            ]
        )
        + "\n"
    )


def bot_toml(*, manifests_dir: str, poll_s: float = 1.0, tick_s: float = 1.0) -> str:
    """The bot's settings. ``manifests_dir``: the hub's ``GET /api/peers`` carries no
    manifests yet, so the rig drops each device's hub-signed manifest there (the bot's
    documented fallback directory; signatures are checked against the operator key)."""
    return (
        "\n".join(
            [
                f"hub_url = {_q(f'http://127.0.0.1:{HUB_API_PORT}')}",
                f"manifests_dir = {_q(manifests_dir)}",
                f"control_hosts = {_qlist(['127.0.0.1', HUB_MESH])}",
                f"control_port = {BOT_API_PORT}",
                f"poll_s = {poll_s}",
                f"tick_s = {tick_s}",
            ]
        )
        + "\n"
    )


def agent_config(
    *,
    device_name: str,
    device_id: str,
    manifest_path: str,
    operator_key: str,
    matrix_user: str,
    matrix_password: str,
    bot_user: str,
    server_name: str = SERVER_NAME,
    docker_host: str | None = None,
    health_interval_s: float = 2.0,
) -> dict[str, Any]:
    """The device agent's config.json (docs: meshagents/apps/device_agent/config.py). No ``audit_path``:
    the agent's default, ``<state>/audit/<id>.sqlite``, is where the verifier looks."""
    out: dict[str, Any] = {
        "device_id": device_id,
        "device_name": device_name,
        "manifest_path": manifest_path,
        "operator_key": operator_key,
        "homeserver": homeserver_url(),
        "matrix_user": matrix_user,
        "matrix_password": matrix_password,
        "store_dir": "matrix-store",
        "device_room": device_alias(device_name, server_name),
        "approvals_room": room_alias(APPROVALS_ALIAS, server_name),
        "bot_users": [bot_user],
        "hub_url": f"http://{HUB_MESH}:{HUB_API_PORT}",
        "sandbox": True,
        "docker_host": docker_host,
        "health_interval_s": health_interval_s,
    }
    return out


def _one_executable(cap: dict[str, Any]) -> dict[str, Any]:
    """Keep one whitelisted path per program: on a merged-/usr system (Debian 12) a bare
    ``ls`` is found as both /bin/ls and /usr/bin/ls, and the trust core refuses a name
    that matches two whitelisted executables (``rejected_args``)."""
    exes = cap.get("executables")
    if not exes or len(exes) < 2:
        return dict(cap)
    usr = [e for e in exes if e.startswith("/usr/")]
    return {**cap, "executables": (usr or exes)[:1]}


def demo_profile(workstation: dict[str, Any]) -> dict[str, Any]:
    """The hub's workstation profile plus ``fs.write`` under /tmp with an operator's approval,
    so the demo shows the approval flow (``!fs.write /tmp/x hello``)."""
    caps = [_one_executable(c) for c in workstation.get("capabilities", []) if c.get("name") != "fs.write"]
    caps.append(
        {
            "name": "fs.write",
            "description": "write one file under /tmp, only with an operator's approval",
            "path_prefixes": ["/tmp"],
            "texts": {"content": 65536, "file": 4096},  # file: an upload replied to with !fs.write
            "timeout_s": 10,
            "output_cap_bytes": 4096,
            "requires_approval": True,
        }
    )
    caps.append({"name": "control.cancel", "description": "stop a running request (!cancel <id>)",
                 "texts": {"request_id": 128}, "timeout_s": 10})
    return {
        "description": "the local demo: workstation plus fs.write under /tmp with approval",
        "ttl_s": int(workstation.get("ttl_s", 31536000)),
        "capabilities": caps,
    }


def connection_info(
    *,
    homeserver: str,
    server_name: str,
    operator_user: str,
    operator_password: str,
    cross_signing_path: str,
    bot_user: str,
    devices: list[str],
    dashboard: str,
    hub_api: str,
    bot_api: str,
    api_token: str,
    store_root: str,
    recovery_key: str = "",
    operator_state: str = "",
) -> dict[str, Any]:
    """What ``./fn chat`` (and any client) needs to talk to the running demo."""
    return {
        "homeserver": homeserver,
        "server_name": server_name,
        "operator_user": operator_user,
        "operator_password": operator_password,
        "cross_signing_path": cross_signing_path,
        "bot_user": bot_user,
        "rooms": {d: device_alias(d, server_name) for d in devices}
        | {"approvals": room_alias(APPROVALS_ALIAS, server_name)},
        "dashboard": dashboard,
        "hub_api": hub_api,
        "bot_api": bot_api,
        "api_token": api_token,
        "store_root": store_root,
        # Element's "Verify with Recovery Key" (secret storage): a secret, like the password
        "recovery_key": recovery_key,
        # the state dir whose key store holds the operator key (trust-matrix-identity)
        "operator_state": operator_state,
    }
