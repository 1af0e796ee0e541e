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
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, Strict, StrictInt, StrictStr

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
from meshagents.configfile import validate
from meshagents.errors import FnError
from meshagents.matrix.settings import actor_credentials, load_settings
from meshagents.state import state_dir
from meshagents.trust.keystore import OPERATOR_KEY, KeyStore, open_keystore
from meshagents.trust.signing import public_b64, signing_key_from_seed

DEFAULT_TOKEN_NAME = "wg_hub/api_token"  # noqa: S105 - a key store entry name, not a secret


#: a number (true/false and strings refused); each field gives its range
Num = Annotated[float, Strict()]


def _none_if_empty(value: Any) -> Any:
    return value or None


OptionalText = Annotated[StrictStr | None, BeforeValidator(_none_if_empty)]


class BotSettings(BaseModel):
    """The settings file (every key optional, no other key); refused whole with
    ``bot_config_invalid`` naming the file, the key and the expected type."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    hub_url: OptionalText = None
    manifests_dir: Annotated[Path | None, BeforeValidator(_none_if_empty)] = None
    operator_key: OptionalText = None
    api_token_name: StrictStr = DEFAULT_TOKEN_NAME
    control_hosts: tuple[Annotated[StrictStr, Field(min_length=1)], ...] = ("127.0.0.1",)
    control_port: StrictInt = Field(default=DEFAULT_PORT, ge=0, le=65535)
    poll_s: Num = Field(default=2.0, ge=0.1, le=2.0)  # the spec gives revocations 5 s to show
    tick_s: Num = Field(default=2.0, ge=0.1, le=60.0)
    stale_after_s: Num = Field(default=24 * 3600.0, ge=1.0, le=365 * 86400.0)
    approval_ttl_s: Num = Field(default=3600.0, ge=1.0, le=86400.0)
    envelope_ttl_s: StrictInt = Field(default=300, ge=10, le=3600)
    commands_per_minute: Num = Field(default=120.0, ge=0.1, le=6000.0)
    command_burst: StrictInt = Field(default=30, ge=1, le=1000)


def default_path() -> Path:
    return state_dir() / APP / "bot.toml"


def parse_settings(data: dict[str, Any], source: str = "bot settings") -> BotSettings:
    """The TOML table -> BotSettings, with clear errors (pure)."""
    return validate(BotSettings, data, source=source, code="bot_config_invalid")


def load(path: Path | None = None) -> BotSettings:
    path = path or default_path()
    if not path.exists():
        return BotSettings()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise FnError("bot_config_invalid", f"{path}: {exc}") from exc
    return parse_settings(data, str(path))


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
