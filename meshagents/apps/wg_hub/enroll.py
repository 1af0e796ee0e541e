"""The hub's operations: enrollment, refusals, peers, tokens, audit — the layer under the HTTP apps.

    hub = Hub(cfg, bus)                  # checks the WireGuard hub and the keys exist
    hub.enroll(token, wg_public_key, device_key) -> dict        # the /enroll answer
    hub.refused(token, reason) -> dict                          # the device refused its manifest
    hub.peers() / hub.add_peer(...) / hub.remove_peer(id) / hub.revoke_peer(id)
    hub.create_token(device_name, profile, ttl_s) -> dict
    hub.audit_post(device_id, body) / hub.audit_get(device_id)

Catalog functions are called through ``meshagents.runtime.api.call(..., caller="wg_hub")`` so
each call is timed and counted (declared in app.md ``uses_functions``).

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
import ipaddress
import json
import logging
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any

from meshagents.apps.wg_hub import audit_ingest
from meshagents.apps.wg_hub.config import HubConfig
from meshagents.apps.wg_hub.events import EventBus
from meshagents.apps.wg_hub.install_bundle import BundleStore, install_command
from meshagents.apps.wg_hub.issue import build_manifest, matrix_user
from meshagents.apps.wg_hub.profiles import load_profile
from meshagents.apps.wg_hub.store import HubStore
from meshagents.errors import FnError
from meshagents.runtime.api import call
from meshagents.trust import manifest as manifest_mod
from meshagents.trust import tokens
from meshagents.trust.keystore import (
    CONTROLLER_KEY,
    OPERATOR_KEY,
    load_signing_key,
    open_keystore,
    wg_preshared_name,
)
from meshagents.trust.rotation import current_operator_key
from meshagents.trust.sealing import check_device_key, seal_answer
from meshagents.trust.signing import TYPE_TOKEN, public_b64, verify_payload
from meshagents.wg.context import WgPaths
from meshagents.wg.hub import public_of
from meshagents.wg.keys import check_key

log = logging.getLogger("wg_hub")

KEEPALIVE = 25


@dataclass(frozen=True)
class HubFacts:
    public_key: str
    mesh_address: str  # 10.42.0.1
    subnet: str  # 10.42.0.0/24
    prefixlen: int
    listen_port: int
    endpoint: str | None


def _key32(value: str, what: str) -> str:
    try:
        return check_key(value, what)
    except FnError as exc:
        raise FnError("invalid_key", exc.message, field=what) from exc


class Hub:
    def __init__(self, cfg: HubConfig, bus: EventBus) -> None:
        self.cfg = cfg
        self.bus = bus
        self.paths = WgPaths(cfg.interface, cfg.config_dir)
        self.store = HubStore(cfg.db_path)
        self.bundles = BundleStore(cfg.install_root)  # served at /install (install_routes)
        self.facts = self._facts()
        self.operator_public  # noqa: B018 - fail at start, not at the first enrollment, without a key
        if cfg.manifest_signing != "offline":
            # the manifest signer: the operator key unless the config names another (see docs/hub.md)
            load_signing_key(cfg.manifest_key)
        self.controllers = [public_b64(load_signing_key(CONTROLLER_KEY)), *cfg.controllers]

    @property
    def operator_public(self) -> str:
        """The operator's public key, read on each use so a rotation takes effect without a restart."""
        if self.cfg.manifest_signing == "offline":
            # the operator key stays on the operator's machine: the hub only knows its public half
            return self.cfg.operator_public_key or current_operator_key()
        return public_b64(load_signing_key(OPERATOR_KEY))

    # facts -----------------------------------------------------------------------------------
    def _facts(self) -> HubFacts:
        wg = self.paths.require_config()
        if not wg.interface.private_key or not wg.interface.addresses:
            raise FnError("hub_not_configured", f"{self.paths.conf} lacks PrivateKey or Address")
        iface = ipaddress.IPv4Interface(wg.interface.addresses[0])
        endpoint = self.cfg.endpoint
        if endpoint is None and self.paths.ledger_path.exists():
            with self.paths.ledger() as led:
                endpoint = led.get_meta("endpoint")
        port = wg.interface.listen_port or 51820
        if endpoint is None and self.cfg.public_host not in ("0.0.0.0", "::"):  # noqa: S104
            endpoint = f"{self.cfg.public_host}:{port}"
        if endpoint is not None and ":" not in endpoint:
            endpoint = f"{endpoint}:{port}"
        return HubFacts(
            public_key=public_of(wg.interface.private_key),
            mesh_address=str(iface.ip),
            subnet=str(iface.network),
            prefixlen=iface.network.prefixlen,
            listen_port=port,
            endpoint=endpoint,
        )

    @property
    def wg_args(self) -> dict[str, Any]:
        return {"interface": self.cfg.interface, "config_dir": self.cfg.config_dir, "netns": self.cfg.netns}

    def operator_hosts(self) -> list[str]:
        return list(self.cfg.operator_hosts) or [self.facts.mesh_address, "127.0.0.1"]

    # enrollment ------------------------------------------------------------------------------
    def enroll(self, token: str, wg_public_key: str, device_key: str) -> dict[str, Any]:
        checked = call(
            "enrollment_token_verify",
            caller="wg_hub",
            token=token,
            consume=False,
            operator_key=self.operator_public,
        )
        tok = tokens.decode(token)
        if tok.hub_public_key and tok.hub_public_key != self.facts.public_key:
            raise FnError("token_invalid", "this token was made for another hub")
        seen = self.store.token(tok.token_id)
        if seen is not None and seen["state"] != "issued":  # the clear answer first; claim_token decides
            raise FnError("token_used", "enrollment token already used")
        wg_pub = _key32(wg_public_key, "wg_public_key")
        dev_key = _key32(device_key, "device_key")
        name = str(checked["device_name"])
        profile = load_profile(self.cfg.profiles_dir, str(checked["profile"]))
        self._check_free(name, wg_pub)
        check_device_key(dev_key)  # the answer is sealed to it: refuse before the token is spent
        self.store.claim_token(tok.token_id, name, tok.profile, tok.issued_at, tok.expires_at)
        added = False
        try:
            peer = call(
                "wg_peer_add",
                caller="wg_hub",
                public_key=wg_pub,
                name=name,
                preshared=self.cfg.preshared,
                **self.wg_args,
            )
            added = True
            offline = self.cfg.manifest_signing == "offline"
            signer = None if offline else load_signing_key(self.cfg.manifest_key)
            body = build_manifest(
                device_name=name,
                device_key=dev_key,
                wg_public_key=wg_pub,
                mesh_address=str(peer["address"]),
                profile=profile,
                controllers=self.controllers,
                approvers=self._approvers(),
                bot_users=self._bot_users(),
                server_name=self.cfg.matrix.server_name if self.cfg.matrix else self.cfg.matrix_server_name,
                serial=self.store.next_serial(wg_pub),
                now=int(time.time()),
                default_ttl_s=self.cfg.manifest_ttl_s,
                operator_key=self.operator_public if signer is None else public_b64(signer),
            )
            signed: dict[str, Any] | None = None
            if signer is None:  # two-step: the operator signs it offline (sign_pending)
                self.store.add_pending(
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
                self.store.record_peer(
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
                self._undo_peer(wg_pub)
            self.store.release_token(tok.token_id)
            raise
        self.store.finish_token(tok.token_id, wg_pub)
        self.store.log(
            "enrolled" if signed else "manifest_pending",
            name,
            f"address={peer['address']} profile={profile['name']}",
        )
        log.info("enrolled device=%s address=%s profile=%s", name, peer["address"], profile["name"])
        self.bus.publish("peer_added", {"device_id": name, "address": peer["address"], "public_key": wg_pub})
        answer = {
            "device_id": name,
            "address": peer["address"],
            "address_cidr": f"{peer['address']}/{self.facts.prefixlen}",
            "hub_public_key": self.facts.public_key,
            "hub_mesh_address": self.facts.mesh_address,
            "endpoint": self.facts.endpoint,
            "allowed_ips": [self.facts.subnet],
            "persistent_keepalive": KEEPALIVE,
            "preshared_key": self._psk(name) if self.cfg.preshared else None,
            "operator_port": self.cfg.operator_port,
            "manifest": signed,
            "manifest_pending": signed is None,
            # the content the token pins by hash: the device checks hash, then containment
            "profile": {"name": profile["name"], "capabilities": profile["capabilities"]},
            "matrix": self._matrix(name),
        }
        # the Matrix password and the preshared key leave the hub sealed to the device's key
        return seal_answer(answer, dev_key)

    # two-step signing ------------------------------------------------------------------------
    def _token_of_ours(self, token: str) -> Any:
        """A token the operator signed (expiry ignored: it was used moments or minutes ago)."""
        tok = tokens.decode(token)
        raw = tok.model_dump(mode="json")
        if tok.operator_key != self.operator_public or not verify_payload(
            raw, tok.signature or "", self.operator_public, TYPE_TOKEN
        ):
            raise FnError("token_invalid", "token signature is not the operator's")
        return tok

    def manifest_for(self, token: str) -> tuple[bool, dict[str, Any]]:
        """The device asks for its manifest: (ready, answer)."""
        tok = self._token_of_ours(token)
        row = self.store.peer_by_token(tok.token_id)
        if row is not None and row.state == "enrolled":
            return True, {"device_id": row.device_id, "manifest": row.manifest}
        if self.store.pending_by_token(tok.token_id) is not None:
            return False, {"status": "pending_signature", "message": "the operator has not signed it yet"}
        raise FnError("enrollment_unknown", "no enrollment for this token")

    def pending(self) -> list[dict[str, Any]]:
        return [
            {k: p[k] for k in ("device_id", "public_key", "address", "profile", "created_at", "manifest")}
            for p in self.store.pending()
        ]

    def sign_pending(self, device_id: str, signed: dict[str, Any]) -> dict[str, Any]:
        """Accept the operator's signature on a pending manifest: exactly that body, the operator's key."""
        found = self.store.pending(device_id)
        if not found:
            current = self.store.peer(device_id)
            if current is not None and current.state == "enrolled":
                return self.reissue(device_id, signed)
            raise FnError("enrollment_unknown", f"no manifest of {device_id!r} waits for a signature")
        pending = found[0]
        with self.paths.ledger() as led:
            rec = led.by_key(pending["public_key"])
        if rec is None or rec.status != "active":  # removed or revoked while it waited
            self.store.drop_pending(device_id)
            raise FnError("enrollment_unknown", f"{device_id!r} is no longer an active peer")
        manifest_mod.verify(signed, self.operator_public)  # manifest_invalid_signature / _invalid / _expired
        if {k: v for k, v in signed.items() if k != "signature"} != pending["manifest"]:
            raise FnError("manifest_mismatch", "the signed manifest is not the one the hub prepared")
        self.store.record_peer(
            public_key=pending["public_key"],
            device_id=device_id,
            device_key=pending["device_key"],
            address=pending["address"],
            profile=pending["profile"],
            token_id=pending["token_id"],
            manifest=signed,
        )
        self.store.drop_pending(device_id)
        self.store.log("enrolled", device_id, "manifest signed offline by the operator")
        self.bus.publish("manifest_signed", {"device_id": device_id})
        return {"device_id": device_id, "serial": signed["serial"], "accepted": True}

    def reissue(self, device_id: str, signed: dict[str, Any]) -> dict[str, Any]:
        """A re-issued manifest (capability_manifest_reissue): operator-signed, same device, higher serial.

        The hub cannot widen it (the signature covers it); it only refuses one that names
        another device's keys or address, or does not raise the serial, and then serves it
        at ``GET /api/manifest/{id}`` where the device agent picks it up.
        """
        row = self.store.peer(device_id)
        if row is None or row.state != "enrolled":
            raise FnError("device_unknown", f"no enrolled device {device_id!r}")
        new = manifest_mod.verify(signed, self.operator_public)
        old = row.manifest or {}
        same = [
            k
            for k in ("device_id", "device_key", "wg_public_key", "mesh_address")
            if signed.get(k) != old.get(k)
        ]
        if same:
            raise FnError("manifest_mismatch", f"the re-issued manifest changes {same} of {device_id}")
        if new.serial <= int(old.get("serial", 0)):
            raise FnError(
                "manifest_serial_rollback",
                f"serial {new.serial} does not grow past {old.get('serial')}",
                highest=old.get("serial"),
            )
        self.store.record_peer(
            public_key=row.public_key,
            device_id=device_id,
            device_key=row.device_key,
            address=row.address,
            profile=row.profile,
            token_id=row.token_id,
            manifest=signed,
        )
        self.store.log("manifest_reissued", device_id, f"serial {old.get('serial')} -> {new.serial}")
        self.bus.publish("manifest_updated", {"device_id": device_id, "serial": new.serial})
        return {"device_id": device_id, "serial": new.serial, "accepted": True, "reissued": True}

    def current_manifest(self, device_id: str) -> dict[str, Any]:
        """The signed manifest the hub serves a device (public data: the device verifies it)."""
        row = self.store.peer(device_id)
        if row is None or row.state != "enrolled" or row.manifest is None:
            raise FnError("device_unknown", f"no enrolled device {device_id!r}")
        return {"device_id": device_id, "serial": row.manifest_serial, "manifest": row.manifest}

    def _approvers(self) -> list[str]:
        """The config's approvers; with a homeserver and none configured, its operators."""
        if self.cfg.approvers or self.cfg.matrix is None:
            return list(self.cfg.approvers)
        from meshagents.matrix.settings import load_settings

        try:
            return list(load_settings().operators)
        except FnError as exc:
            log.error("no approvers: %s", exc)
            return []

    def _bot_users(self) -> list[str]:
        """The bot's Matrix id (from the Matrix settings), which the manifest names so the
        device trusts approval requests from it alone."""
        if self.cfg.matrix is None:
            return []
        from meshagents.matrix.settings import load_settings

        try:
            bot = load_settings().bot
        except FnError as exc:
            log.error("no bot user for the manifest: %s", exc)
            return []
        return [bot] if bot else []

    def _check_free(self, name: str, wg_pub: str) -> None:
        """The name and key are new — or this is the same device coming back after a removal.

        Ids are never reused for another key, and a revoked device never comes back; but
        a device whose peer was removed (by an operator, or after it refused a bad
        manifest) may enroll again with a new token and the key it already had.
        """
        if not self.paths.ledger_path.exists():
            return
        with self.paths.ledger() as led:
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

    def _undo_peer(self, wg_pub: str) -> None:
        try:
            call("wg_peer_remove", caller="wg_hub", peer=wg_pub, **self.wg_args)
        except FnError as exc:  # keep the original error; this one goes to the log
            log.error("could not remove the half-enrolled peer: %s", exc)

    def _psk(self, name: str) -> str | None:
        raw = open_keystore().get(wg_preshared_name(name))
        return None if raw is None else base64.b64encode(raw).decode()

    def _matrix(self, name: str) -> dict[str, Any] | None:
        """The device's Matrix account and room, when the hub config has a homeserver."""
        m = self.cfg.matrix
        if m is None:
            return None
        creds = self.cfg.hub_state / "matrix" / f"{name}.json"
        try:
            account = call(
                "matrix_account_provision", caller="wg_hub", device_name=name, credentials_path=creds
            )
            room = call("matrix_room_for_device", caller="wg_hub", device_name=name)
            secret = json.loads(creds.read_text(encoding="utf-8"))
        except (FnError, OSError, ValueError) as exc:
            # The mesh works without Matrix; the operator sees why in the log and the answer.
            log.error("matrix provisioning for %s failed: %s", name, exc)
            return {"error": getattr(exc, "code", "matrix_error"), "message": str(exc)}
        bot: str | None = None
        try:
            from meshagents.matrix.settings import load_settings

            bot = load_settings().bot
        except FnError as exc:
            log.error("matrix settings: %s", exc)
        return {
            "homeserver_url": m.homeserver_url,
            "user_id": account.get("user_id") or secret.get("user_id"),
            "password": secret.get("password"),
            "room_alias": room.get("alias"),
            "room_id": room.get("room_id"),
            "approvals_room": f"#operator-approvals:{m.server_name}",
            "bot_users": [bot] if bot else [],
        }

    def refused(self, token: str, reason: str) -> dict[str, Any]:
        """A device refused the manifest it got: log it and take back the peer made for it.

        The token must still be live: a refusal comes seconds after the answer, and a
        copy of an old token (a log, a screenshot) must not let anyone take a peer back."""
        tok = self._token_of_ours(token)
        if time.time() >= tok.expires_at:  # the hub's own clock issued it: no skew to allow
            raise FnError("token_expired", "the enrollment token has expired")
        row = self.store.peer_by_token(tok.token_id)
        if row is None or row.state != "enrolled" or time.time() - row.enrolled_at > self.cfg.refuse_window_s:
            raise FnError("enrollment_unknown", "no fresh enrollment for this token")
        self._undo_peer(row.public_key)
        self.store.set_peer_state(row.public_key, "refused")
        self.store.set_token_state(tok.token_id, "refused")
        detail = reason[:500]
        self.store.log("manifest_invalid_signature", row.device_id, detail)
        log.warning(
            "manifest_invalid_signature device=%s: the device refused its manifest (%s)",
            row.device_id,
            detail,
        )
        self.bus.publish("peer_removed", {"device_id": row.device_id, "reason": "manifest_invalid_signature"})
        return {"device_id": row.device_id, "removed": True}

    # peers -----------------------------------------------------------------------------------
    def peers(self) -> list[dict[str, Any]]:
        live: dict[str, dict[str, Any]] = {}
        try:
            status = call("wg_status", caller="wg_hub", **self.wg_args)
            live = {p["public_key"]: p for p in status["peers"]}
        except FnError as exc:
            log.error("wg_status failed: %s", exc)
        rows = self.store.peers()
        out = []
        records = []
        if self.paths.ledger_path.exists():
            with self.paths.ledger() as led:
                records = led.all()
        for rec in records:
            p = live.get(rec.public_key, {})
            row = rows.get(rec.public_key)
            out.append(
                {
                    "id": rec.name,
                    "name": rec.name,
                    "public_key": rec.public_key,
                    "address": rec.address,
                    "status": rec.status,
                    "live": bool(p),
                    "online": bool(p.get("online")),
                    "latest_handshake": p.get("latest_handshake"),
                    "rx_bytes": p.get("rx_bytes", 0),
                    "tx_bytes": p.get("tx_bytes", 0),
                    "endpoint": p.get("endpoint"),
                    "enrolled": row is not None,
                    "profile": row.profile if row else None,
                    "manifest_serial": row.manifest_serial if row else None,
                    # the signed manifest (public: the dashboard's capability matrix and the
                    # bot's directory read it; devices verify it against the operator key)
                    "manifest": row.manifest if row else None,
                }
            )
        return out

    def add_peer(self, public_key: str, name: str | None, preshared: bool) -> dict[str, Any]:
        pub = _key32(public_key, "public_key")
        out: dict[str, Any] = call(
            "wg_peer_add", caller="wg_hub", public_key=pub, name=name, preshared=preshared, **self.wg_args
        )
        if out.get("created"):
            self.store.log("peer_added", str(out["name"]), "operator API")
            self.bus.publish(
                "peer_added", {"device_id": out["name"], "address": out["address"], "public_key": pub}
            )
        return out

    def _ledger_name(self, device_id: str) -> str:
        if not self.paths.ledger_path.exists():
            raise FnError("peer_unknown", f"no peer {device_id!r}")
        with self.paths.ledger() as led:
            rec = led.by_name(device_id)
        if rec is None:
            raise FnError("peer_unknown", f"no peer {device_id!r}")
        return rec.name

    def remove_peer(self, device_id: str) -> dict[str, Any]:
        name = self._ledger_name(device_id)
        out: dict[str, Any] = call("wg_peer_remove", caller="wg_hub", peer=name, **self.wg_args)
        row = self.store.peer(name)
        if row is not None and row.state == "enrolled":
            self.store.set_peer_state(row.public_key, "removed")
        self.store.log("peer_removed", name, "operator API")
        self.bus.publish("peer_removed", {"device_id": name, "address": out["address"]})
        return out

    def revoke_peer(self, device_id: str) -> dict[str, Any]:
        name = self._ledger_name(device_id)
        # answered once the peer is off the interface and revoked in the ledger (the config's git
        # commit follows in the background): the kill switch's latency is the caller's
        out: dict[str, Any] = call(
            "wg_peer_revoke", caller="wg_hub", peer=name, defer_config=True, **self.wg_args
        )
        row = self.store.peer(name)
        if row is not None:
            self.store.set_peer_state(row.public_key, "revoked")
        self.store.log("peer_revoked", name, "operator API")
        log.warning("peer_revoked device=%s (removed live in %s ms)", name, out.get("live_removed_ms"))
        self.bus.publish("peer_revoked", {"device_id": name, "address": out["address"]})
        # After the kill switch bit, and off the caller's path (a Matrix login and kick take
        # hundreds of ms): take the device's Matrix user out of its room. The outcome is a
        # ``matrix_kicked`` event and a hub_log row.
        if self.cfg.matrix is not None:
            threading.Thread(target=self._kick_later, args=(name,), name=f"kick-{name}", daemon=True).start()
            out["matrix_kick"] = "started"
        else:
            out["matrix_kick"] = None
        return out

    def _kick_later(self, name: str) -> None:
        result = self._matrix_kick(name)
        self.store.log("matrix_kicked", name, json.dumps(result, sort_keys=True))
        self.bus.publish("matrix_kicked", {"device_id": name, "result": result})

    def _matrix_kick(self, name: str) -> dict[str, Any] | None:
        m = self.cfg.matrix
        if m is None:
            return None
        try:
            kicked: dict[str, Any] = call(
                "matrix_room_kick",
                caller="wg_hub",
                room=f"#{m.room_alias_prefix}{name}:{m.server_name}",
                user=matrix_user(name, m.server_name),
                reason="device revoked",
            )
        except FnError as exc:
            log.error("could not remove %s from its Matrix room: %s", name, exc)
            return {"error": exc.code, "message": exc.message}
        return kicked

    # tokens ----------------------------------------------------------------------------------
    def create_token(
        self, device_name: str, profile: str, ttl_s: int, *, bundle_sha256: str | None = None
    ) -> dict[str, Any]:
        load_profile(self.cfg.profiles_dir, profile)  # refuse a token nobody could use
        if bundle_sha256 is not None:
            self.bundles.manifest(bundle_sha256)  # bundle_unknown: install.sh could fetch nothing
        out: dict[str, Any] = call(
            "enrollment_token_create",
            caller="wg_hub",
            device_name=device_name,
            ttl_s=ttl_s,
            hub_endpoint=self.cfg.enroll_url(),
            hub_public_key=self.facts.public_key,
            profile=profile,
            # a hub configured on loopback serves devices on its own machine (tests, a lab)
            allow_loopback=self.cfg.enroll_url_is_loopback(),
            profiles_dir=self.cfg.profiles_dir,  # the token pins this profile's content by hash
            controllers=self.controllers,
            bundle_sha256=bundle_sha256,
        )
        if bundle_sha256 is not None:
            out["install_command"] = install_command(self.cfg.enroll_url(), str(out["token"]))
        self.store.add_token(
            str(out["token_id"]), device_name, profile, int(out["issued_at"]), int(out["expires_at"])
        )
        self.store.log("token_created", device_name, f"profile={profile} ttl_s={ttl_s}")
        return out

    # audit -----------------------------------------------------------------------------------
    def _device_key(self, device_id: str) -> str:
        row = self.store.peer(device_id)
        if row is None:
            raise FnError("device_unknown", f"no enrolled device {device_id!r}")
        return row.device_key

    def leave(self, device_id: str, body: Any) -> dict[str, Any]:
        """A device-signed leave (meshagents.trust.leave): checked against the enrolled device's key,
        then the same revoke as the operator's, logged as the device's own request."""
        from meshagents.trust import leave as leave_mod

        row = self.store.peer(device_id)
        if row is None or row.state != "enrolled":
            raise FnError("device_unknown", f"no enrolled device {device_id!r}")
        leave_mod.check(body, device_id, row.device_key)
        self.store.log("device_left", device_id, "device-signed leave request")
        out = self.revoke_peer(device_id)
        out["left"] = True
        return out

    def audit_post(self, device_id: str, body: Any) -> dict[str, Any]:
        return audit_ingest.ingest(self.store, device_id, self._device_key(device_id), body)

    def audit_get(self, device_id: str) -> dict[str, Any]:
        return audit_ingest.chain_status(self.store, device_id, self._device_key(device_id))


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
