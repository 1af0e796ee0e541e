"""Enrollment: a token and two keys in, a peer and a sealed answer out; and a refusal.

    service.enroll(token, wg_public_key, device_key) -> dict    # the /enroll answer
    service.refused(token, reason) -> dict                      # the device refused its manifest

Enrollment order, and why:

1. everything that needs no state is checked first (token signature and expiry, key
   shapes, the profile exists, the device name is free), so a malformed request never
   burns a token;
2. the token is *claimed* in operations.db in one ``BEGIN IMMEDIATE`` transaction —
   the one-use gate: of two concurrent requests with one token exactly one passes;
3. the peer is added (ledger, config, live), the manifest built and signed;
4. the token is marked used and the peer recorded. A failure in 3 on the hub's side
   removes the peer again and gives the token back (the operator should not need a
   new token because the hub hiccuped).
"""

from __future__ import annotations

import base64
import logging
import time
from typing import Any

from meshagents.apps.wg_hub.context import HubContext, key32
from meshagents.apps.wg_hub.issue import build_manifest
from meshagents.apps.wg_hub.matrix import MatrixService
from meshagents.apps.wg_hub.profiles import load_profile
from meshagents.apps.wg_hub.tokens import TokenService
from meshagents.errors import FnError
from meshagents.runtime.api import call
from meshagents.trust import manifest as manifest_mod
from meshagents.trust import tokens
from meshagents.trust.keystore import load_signing_key, open_keystore, wg_preshared_name
from meshagents.trust.sealing import check_device_key, seal_answer
from meshagents.trust.signing import public_b64

log = logging.getLogger("wg_hub")

KEEPALIVE = 25


class EnrollmentService:
    """Enrollments and refusals (the order of the steps: see the module docstring)."""

    def __init__(self, ctx: HubContext, token_service: TokenService, matrix: MatrixService) -> None:
        self.ctx = ctx
        self.token_service = token_service
        self.matrix = matrix

    def enroll(self, token: str, wg_public_key: str, device_key: str) -> dict[str, Any]:
        checked = call(
            "enrollment_token_verify",
            caller="wg_hub",
            token=token,
            consume=False,
            operator_key=self.ctx.operator_public,
        )
        tok = tokens.decode(token)
        if tok.hub_public_key and tok.hub_public_key != self.ctx.facts.public_key:
            raise FnError("token_invalid", "this token was made for another hub")
        seen = self.ctx.store.token(tok.token_id)
        if seen is not None and seen["state"] != "issued":  # the clear answer first; claim_token decides
            raise FnError("token_used", "enrollment token already used")
        wg_pub = key32(wg_public_key, "wg_public_key")
        dev_key = key32(device_key, "device_key")
        name = str(checked["device_name"])
        profile = load_profile(self.ctx.cfg.profiles_dir, str(checked["profile"]))
        self._check_free(name, wg_pub)
        check_device_key(dev_key)  # the answer is sealed to it: refuse before the token is spent
        self.ctx.store.claim_token(tok.token_id, name, tok.profile, tok.issued_at, tok.expires_at)
        added = False
        try:
            peer = call(
                "wg_peer_add",
                caller="wg_hub",
                public_key=wg_pub,
                name=name,
                preshared=self.ctx.cfg.preshared,
                **self.ctx.wg_args,
            )
            added = True
            self.ctx.sync_ledger()
            cfg = self.ctx.cfg
            offline = cfg.manifest_signing == "offline"
            signer = None if offline else load_signing_key(self.ctx.cfg.manifest_key)
            body = build_manifest(
                device_name=name,
                device_key=dev_key,
                wg_public_key=wg_pub,
                mesh_address=str(peer["address"]),
                profile=profile,
                controllers=self.ctx.controllers,
                approvers=self.matrix.approvers(),
                bot_users=self.matrix.bot_users(),
                server_name=cfg.matrix.server_name if cfg.matrix else cfg.matrix_server_name,
                serial=self.ctx.store.next_serial(wg_pub),
                now=int(time.time()),
                default_ttl_s=self.ctx.cfg.manifest_ttl_s,
                operator_key=self.ctx.operator_public if signer is None else public_b64(signer),
            )
            signed: dict[str, Any] | None = None
            if signer is None:  # two-step: the operator signs it offline (sign_pending)
                self.ctx.store.add_pending(
                    device_id=name,
                    public_key=wg_pub,
                    token_id=tok.token_id,
                    device_key=dev_key,
                    address=str(peer["address"]),
                    profile=profile["name"],
                    body=body,
                )
            else:
                signed = manifest_mod.sign(body, signer).model_dump(mode="json")
                self.ctx.store.record_peer(
                    public_key=wg_pub,
                    device_id=name,
                    device_key=dev_key,
                    address=str(peer["address"]),
                    profile=profile["name"],
                    token_id=tok.token_id,
                    manifest=signed,
                )
        except BaseException:
            if added:
                self.ctx.undo_peer(wg_pub)
            self.ctx.store.release_token(tok.token_id)
            raise
        self.ctx.store.finish_token(tok.token_id, wg_pub)
        self.ctx.store.log(
            "enrolled" if signed else "manifest_pending",
            name,
            f"address={peer['address']} profile={profile['name']}",
        )
        log.info("enrolled device=%s address=%s profile=%s", name, peer["address"], profile["name"])
        added_event = {"device_id": name, "address": peer["address"], "public_key": wg_pub}
        self.ctx.bus.publish("peer_added", added_event)
        answer = {
            "device_id": name,
            "address": peer["address"],
            "address_cidr": f"{peer['address']}/{self.ctx.facts.prefixlen}",
            "hub_public_key": self.ctx.facts.public_key,
            "hub_mesh_address": self.ctx.facts.mesh_address,
            "endpoint": self.ctx.facts.endpoint,
            "allowed_ips": [self.ctx.facts.subnet],
            "persistent_keepalive": KEEPALIVE,
            "preshared_key": self._psk(name) if self.ctx.cfg.preshared else None,
            "operator_port": self.ctx.cfg.operator_port,
            "manifest": signed,
            "manifest_pending": signed is None,
            # the content the token pins by hash: the device checks hash, then containment
            "profile": {"name": profile["name"], "capabilities": profile["capabilities"]},
            "matrix": self.matrix.provision(name),
        }
        # the Matrix password and the preshared key leave the hub sealed to the device's key
        return seal_answer(answer, dev_key)

    def _check_free(self, name: str, wg_pub: str) -> None:
        """The name and key are new — or this is the same device coming back after a removal.

        Ids are never reused for another key, and a revoked device never comes back; but
        a device whose peer was removed (by an operator, or after it refused a bad
        manifest) may enroll again with a new token and the key it already had.
        """
        if not self.ctx.paths.ledger_path.exists():
            return
        self.ctx.hold_ledger()
        with self.ctx.paths.ledger() as led:
            by_name, by_key = led.by_name(name), led.by_key(wg_pub)
        if by_name is not None and by_name.status == "removed" and by_name.public_key == wg_pub:
            return
        if by_name is not None:
            what = (
                "was revoked; ids are never reused" if by_name.status == "revoked" else "is already enrolled"
            )
            raise FnError("device_exists", f"device {name!r} {what}", device_id=name, status=by_name.status)
        if by_key is not None:
            raise FnError(
                "device_exists", "this WireGuard key already belongs to a device", status=by_key.status
            )

    def _psk(self, name: str) -> str | None:
        raw = open_keystore().get(wg_preshared_name(name))
        return None if raw is None else base64.b64encode(raw).decode()

    def refused(self, token: str, reason: str) -> dict[str, Any]:
        """A device refused the manifest it got: log it and take back the peer made for it.

        The token must still be live: a refusal comes seconds after the answer, and a
        copy of an old token (a log, a screenshot) must not let anyone take a peer back."""
        tok = self.token_service.ours(token)
        if time.time() >= tok.expires_at:  # the hub's own clock issued it: no skew to allow
            raise FnError("token_expired", "the enrollment token has expired")
        row = self.ctx.store.peer_by_token(tok.token_id)
        window = self.ctx.cfg.refuse_window_s
        if row is None or row.state != "enrolled" or time.time() - row.enrolled_at > window:
            raise FnError("enrollment_unknown", "no fresh enrollment for this token")
        self.ctx.undo_peer(row.public_key)
        self.ctx.store.set_peer_state(row.public_key, "refused")
        self.ctx.store.set_token_state(tok.token_id, "refused")
        detail = reason[:500]
        self.ctx.store.log("manifest_invalid_signature", row.device_id, detail)
        log.warning(
            "manifest_invalid_signature device=%s: the device refused its manifest (%s)",
            row.device_id,
            detail,
        )
        removed = {"device_id": row.device_id, "reason": "manifest_invalid_signature"}
        self.ctx.bus.publish("peer_removed", removed)
        return {"device_id": row.device_id, "removed": True}
