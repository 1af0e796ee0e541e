"""The bot's settings file and how a running shell is assembled from it.

``$FN_STATE_DIR/agents_and_robots/bot.toml`` (or ``--config FILE``); every key is optional::

    hub_url = "http://127.0.0.1:8000"        # the hub's operator API (peers, revoke); none: hub-less
    manifests_dir = "/var/lib/meshagents/agents_and_robots/manifests"  # signed manifest files
    operator_key = "<base64 ed25519 public>" # check manifest signatures (default: the public
                                              # half of operator/ed25519 when the key store has it)
    api_token_name = "wg_hub/api_token"      # key store entry: hub API + control API bearer token
    control_hosts = ["127.0.0.1"]            # add the hub's mesh address to serve the dashboard there
    control_port = 8766
    poll_s = 2.0                             # directory poll (revocations show within this)
    tick_s = 2.0                             # approval expiry check
    stale_after_s = 86400                    # stale-device alert threshold
    approval_ttl_s = 3600
    envelope_ttl_s = 300
    commands_per_minute = 120                # per sender (token bucket), then "rate_limited"
    command_burst = 30

The Matrix account is the Matrix layer's ``actor`` (``matrix/settings.toml``; the bot
account, which also creates the device rooms), with a nio store of its own
(``accounts/<actor>/stores/bot``); ``operators`` there are admins of
``#operator-approvals`` besides the manifests' approvers.
"""

from __future__ import annotations

import base64
import dataclasses
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from meshagents.apps.agents_and_robots.control import DEFAULT_PORT
from meshagents.apps.agents_and_robots.directory import (
    DeviceDirectory,
    FileDirectory,
    HubApi,
    HubDirectory,
    HubLike,
    LocalHub,
)
from meshagents.apps.agents_and_robots.dispatches import APP
from meshagents.apps.agents_and_robots.shell import BotShell, ShellConfig
from meshagents.errors import FnError
from meshagents.matrix.settings import actor_credentials, load_settings
from meshagents.state import state_dir
from meshagents.trust.keystore import OPERATOR_KEY, KeyStore, open_keystore
from meshagents.trust.signing import public_b64, signing_key_from_seed

DEFAULT_TOKEN_NAME = "wg_hub/api_token"  # noqa: S105 - a key store entry name, not a secret


@dataclass(frozen=True)
class BotSettings:
    hub_url: str | None = None
    manifests_dir: Path | None = None
    operator_key: str | None = None
    api_token_name: str = DEFAULT_TOKEN_NAME
    control_hosts: tuple[str, ...] = ("127.0.0.1",)
    control_port: int = DEFAULT_PORT
    poll_s: float = 2.0
    tick_s: float = 2.0
    stale_after_s: float = 24 * 3600.0
    approval_ttl_s: float = 3600.0
    envelope_ttl_s: int = 300
    commands_per_minute: float = 120.0
    command_burst: int = 30


def default_path() -> Path:
    return state_dir() / APP / "bot.toml"


def _num(data: dict[str, Any], key: str, default: float, low: float, high: float) -> float:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise FnError("bot_config_invalid", f"{key} must be a number from {low} to {high}")
    return float(value)


def parse_settings(data: dict[str, Any]) -> BotSettings:
    """The TOML table -> BotSettings, with clear errors (pure)."""
    known = set(BotSettings.__dataclass_fields__)
    unknown = sorted(set(data) - known)
    if unknown:
        raise FnError("bot_config_invalid", f"unknown setting(s): {', '.join(unknown)}")
    hosts = data.get("control_hosts", ["127.0.0.1"])
    if not isinstance(hosts, list) or not all(isinstance(h, str) and h for h in hosts):
        raise FnError("bot_config_invalid", "control_hosts must be a list of addresses")
    for key in ("hub_url", "manifests_dir", "operator_key", "api_token_name"):
        if key in data and not isinstance(data[key], str):
            raise FnError("bot_config_invalid", f"{key} must be a string")
    poll = _num(data, "poll_s", 2.0, 0.1, 2.0)  # the spec gives revocations 5 s to show
    return BotSettings(
        hub_url=data.get("hub_url") or None,
        manifests_dir=Path(data["manifests_dir"]) if data.get("manifests_dir") else None,
        operator_key=data.get("operator_key") or None,
        api_token_name=str(data.get("api_token_name", DEFAULT_TOKEN_NAME)),
        control_hosts=tuple(hosts),
        control_port=int(_num(data, "control_port", DEFAULT_PORT, 0, 65535)),
        poll_s=poll,
        tick_s=_num(data, "tick_s", 2.0, 0.1, 60.0),
        stale_after_s=_num(data, "stale_after_s", 24 * 3600.0, 1.0, 365 * 86400.0),
        approval_ttl_s=_num(data, "approval_ttl_s", 3600.0, 1.0, 86400.0),
        envelope_ttl_s=int(_num(data, "envelope_ttl_s", 300, 10, 3600)),
        commands_per_minute=_num(data, "commands_per_minute", 120.0, 0.1, 6000.0),
        command_burst=int(_num(data, "command_burst", 30, 1, 1000)),
    )


def load(path: Path | None = None) -> BotSettings:
    path = path or default_path()
    if not path.exists():
        return BotSettings()
    try:
        return parse_settings(tomllib.loads(path.read_text(encoding="utf-8")))
    except tomllib.TOMLDecodeError as exc:
        raise FnError("bot_config_invalid", f"{path}: {exc}") from exc


def api_token(store: KeyStore, name: str) -> str:
    """The hub's operator API token as the hub encodes it (url-safe base64, no padding);
    empty when the key store has none yet (the hub makes it at its first start)."""
    raw = store.get(name)
    return base64.urlsafe_b64encode(raw).decode().rstrip("=") if raw else ""


def operator_public_key(store: KeyStore) -> str | None:
    seed = store.get(OPERATOR_KEY)
    return public_b64(signing_key_from_seed(seed)) if seed else None


def build(settings: BotSettings) -> BotShell:
    """A BotShell from the settings file, the Matrix settings and the key store."""
    store = open_keystore()
    token = api_token(store, settings.api_token_name)
    operator_key = settings.operator_key or operator_public_key(store)
    matrix = load_settings()
    creds, account_root = actor_credentials(matrix)
    client = creds.client_config(account_root, "bot", operators=matrix.operators, device_name=APP)
    if operator_key:
        # an operator-signed statement confirms the operator's new Matrix identity (a reset)
        client = dataclasses.replace(client, identity_keys=lambda: (operator_key,))
    files = None
    if settings.manifests_dir:
        files = FileDirectory(settings.manifests_dir, operator_key=operator_key)
    directory: DeviceDirectory
    hub: HubLike | None
    if settings.hub_url:
        if not token:
            raise FnError("key_missing", f"no {settings.api_token_name} in the key store for the hub API")
        hub = HubApi(settings.hub_url, token)
        directory = HubDirectory(hub, fallback=files, operator_key=operator_key)
    elif files is not None:
        hub, directory = LocalHub(files.path), files
    else:
        raise FnError("bot_config_invalid", "set hub_url or manifests_dir in the bot settings")
    cfg = ShellConfig(
        client=client, server_name=matrix.server_name, operators=matrix.operators,
        control_hosts=settings.control_hosts, control_port=settings.control_port, control_token=token,
        poll_s=settings.poll_s, tick_s=settings.tick_s, stale_after_s=settings.stale_after_s,
        approval_ttl_s=settings.approval_ttl_s, envelope_ttl_s=settings.envelope_ttl_s,
        commands_per_minute=settings.commands_per_minute, command_burst=settings.command_burst,
    )
    return BotShell(cfg, directory=directory, hub=hub)
