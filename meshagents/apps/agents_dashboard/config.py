"""The dashboard's configuration (frozen) and where its operator token comes from.

    cfg = DashConfig(hub_api="http://127.0.0.1:8000", bot_api="http://127.0.0.1:8766")
    token = load_token(cfg)      # --token-file, else the key store entry the hub uses

Defaults suit a dashboard running on the hub next to wg_hub: it listens on the hub's
mesh address (asked from the hub's ``/healthz``) and 127.0.0.1, port 8080.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, Strict, StrictInt, StrictStr, ValidationError

from meshagents.configfile import config_error
from meshagents.errors import FnError
from meshagents.trust.keystore import open_keystore

DEFAULT_TOKEN_NAME = "wg_hub/api_token"  # noqa: S105 - a key store entry name, not a secret


Positive = Annotated[float, Strict(), Field(gt=0)]


class DashConfig(BaseModel):
    """Built from the command's flags; a bad value is ``config_invalid`` naming the key."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    hub_api: StrictStr = "http://127.0.0.1:8000"
    bot_api: StrictStr | None = "http://127.0.0.1:8766"
    hosts: tuple[StrictStr, ...] = ()  # default: the hub's mesh address + 127.0.0.1
    port: Annotated[StrictInt, Field(gt=0, lt=65536)] = 8080
    stale_after_s: Positive = 180.0  # a peer with no handshake for this long is "stale"
    mesh_rows: Annotated[StrictInt, Field(gt=0)] = 500  # a bigger mesh shows its stale peers first
    bot_period_s: Positive = 3.0  # how often approvals and agent states are read from the bot
    tick_s: Positive = 5.0  # re-render ages when the hub sends nothing
    session_ttl_s: Positive = 12 * 3600
    operator_key: StrictStr | None = None  # pinned operator public key (base64) for the manifest check
    token_file: Path | None = None
    token_name: StrictStr = DEFAULT_TOKEN_NAME

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise config_error(exc, source="dashboard config", code="config_invalid") from None


def load_token(cfg: DashConfig) -> str:
    """The operator bearer token: from ``token_file`` (0600), else the hub's key store entry."""
    if cfg.token_file is not None:
        try:
            st = cfg.token_file.stat()
            if st.st_mode & 0o077:
                raise FnError("config_invalid", f"{cfg.token_file} is readable by others; chmod 600 it")
            token = cfg.token_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise FnError("config_invalid", f"cannot read {cfg.token_file}: {exc.strerror}") from exc
        if not token:
            raise FnError("config_invalid", f"{cfg.token_file} is empty")
        return token
    raw = open_keystore().get(cfg.token_name)
    if raw is None:
        raise FnError(
            "key_missing",
            f"no {cfg.token_name} in the key store: start wg_hub once, or pass --token-file",
        )
    # the hub's encoding of the same entry (urlsafe base64 without padding)
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")
