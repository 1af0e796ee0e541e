"""Enrollment tokens on the hub's side: issuing them (and refusing one for a profile
nobody could use), recognising ours later, and the operator API's bearer token."""

from __future__ import annotations

import base64
import secrets
from typing import Any

from meshagents.apps.wg_hub.config import HubConfig
from meshagents.apps.wg_hub.context import HubContext
from meshagents.apps.wg_hub.install_bundle import install_command
from meshagents.apps.wg_hub.profiles import load_profile
from meshagents.errors import FnError
from meshagents.runtime.api import call
from meshagents.trust import tokens
from meshagents.trust.keystore import open_keystore
from meshagents.trust.signing import TYPE_TOKEN, verify_payload


class TokenService:
    """Tokens the hub issues and later recognises."""

    def __init__(self, ctx: HubContext) -> None:
        self.ctx = ctx

    def create(
        self, device_name: str, profile: str, ttl_s: int, *, bundle_sha256: str | None = None
    ) -> dict[str, Any]:
        load_profile(self.ctx.cfg.profiles_dir, profile)  # refuse a token nobody could use
        if bundle_sha256 is not None:
            self.ctx.bundles.manifest(bundle_sha256)  # bundle_unknown: install.sh could fetch nothing
        out: dict[str, Any] = call(
            "enrollment_token_create",
            caller="wg_hub",
            device_name=device_name,
            ttl_s=ttl_s,
            hub_endpoint=self.ctx.cfg.enroll_url(),
            hub_public_key=self.ctx.facts.public_key,
            profile=profile,
            # a hub configured on loopback serves devices on its own machine (tests, a lab)
            allow_loopback=self.ctx.cfg.enroll_url_is_loopback(),
            profiles_dir=self.ctx.cfg.profiles_dir,  # the token pins this profile's content by hash
            controllers=self.ctx.controllers,
            bundle_sha256=bundle_sha256,
        )
        if bundle_sha256 is not None:
            out["install_command"] = install_command(
                self.ctx.cfg.enroll_url(), str(out["token"]), self.ctx.operator_public
            )
        self.ctx.store.add_token(
            str(out["token_id"]), device_name, profile, int(out["issued_at"]), int(out["expires_at"])
        )
        self.ctx.store.log("token_created", device_name, f"profile={profile} ttl_s={ttl_s}")
        return out

    def ours(self, token: str) -> Any:
        """A token the operator signed (expiry ignored: it was used moments or minutes ago)."""
        tok = tokens.decode(token)
        raw = tok.model_dump(mode="json")
        if tok.operator_key != self.ctx.operator_public or not verify_payload(
            raw, tok.signature or "", self.ctx.operator_public, TYPE_TOKEN
        ):
            raise FnError("token_invalid", "token signature is not the operator's")
        return tok



def new_api_token() -> bytes:
    return secrets.token_bytes(32)


def api_token(cfg: HubConfig, *, create: bool = True) -> str:
    """The operator API bearer token (key store ``wg_hub/api_token``), made on first start."""
    store = open_keystore()
    raw = store.get(cfg.api_token_name)
    if raw is None:
        if not create:
            raise FnError("key_missing", f"no {cfg.api_token_name} in the key store")
        store.put(cfg.api_token_name, new_api_token())
        raw = store.get(cfg.api_token_name)
        assert raw is not None
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")
