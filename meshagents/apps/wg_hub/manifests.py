"""Manifests after enrollment: the two-step (offline) signing, re-issues, and the signed
manifest the hub serves a device. The hub never widens one: the operator's signature
covers it; the hub only refuses one that does not fit the device it names."""

from __future__ import annotations

from typing import Any

from meshagents.apps.wg_hub.context import HubContext
from meshagents.apps.wg_hub.tokens import TokenService
from meshagents.errors import FnError
from meshagents.trust import manifest as manifest_mod


class ManifestService:
    """Pending manifests, re-issues and the current manifest of each device."""

    def __init__(self, ctx: HubContext, token_service: TokenService) -> None:
        self.ctx = ctx
        self.token_service = token_service

    def manifest_for(self, token: str) -> tuple[bool, dict[str, Any]]:
        """The device asks for its manifest: (ready, answer)."""
        tok = self.token_service.ours(token)
        row = self.ctx.store.peer_by_token(tok.token_id)
        if row is not None and row.state == "enrolled":
            return True, {"device_id": row.device_id, "manifest": row.manifest}
        if self.ctx.store.pending_by_token(tok.token_id) is not None:
            return False, {"status": "pending_signature", "message": "the operator has not signed it yet"}
        raise FnError("enrollment_unknown", "no enrollment for this token")

    def pending(self) -> list[dict[str, Any]]:
        return [
            {k: p[k] for k in ("device_id", "public_key", "address", "profile", "created_at", "manifest")}
            for p in self.ctx.store.pending()
        ]

    def sign_pending(self, device_id: str, signed: dict[str, Any]) -> dict[str, Any]:
        """Accept the operator's signature on a pending manifest: exactly that body, the operator's key."""
        found = self.ctx.store.pending(device_id)
        if not found:
            current = self.ctx.store.peer(device_id)
            if current is not None and current.state == "enrolled":
                return self.reissue(device_id, signed)
            raise FnError("enrollment_unknown", f"no manifest of {device_id!r} waits for a signature")
        pending = found[0]
        with self.ctx.paths.ledger() as led:
            rec = led.by_key(pending["public_key"])
        if rec is None or rec.status != "active":  # removed or revoked while it waited
            self.ctx.store.drop_pending(device_id)
            raise FnError("enrollment_unknown", f"{device_id!r} is no longer an active peer")
        # manifest_invalid_signature / _invalid / _expired
        manifest_mod.verify(signed, self.ctx.operator_public)
        if {k: v for k, v in signed.items() if k != "signature"} != pending["manifest"]:
            raise FnError("manifest_mismatch", "the signed manifest is not the one the hub prepared")
        self.ctx.store.record_peer(
            public_key=pending["public_key"],
            device_id=device_id,
            device_key=pending["device_key"],
            address=pending["address"],
            profile=pending["profile"],
            token_id=pending["token_id"],
            manifest=signed,
        )
        self.ctx.store.drop_pending(device_id)
        self.ctx.store.log("enrolled", device_id, "manifest signed offline by the operator")
        self.ctx.bus.publish("manifest_signed", {"device_id": device_id})
        return {"device_id": device_id, "serial": signed["serial"], "accepted": True}

    def reissue(self, device_id: str, signed: dict[str, Any]) -> dict[str, Any]:
        """A re-issued manifest (capability_manifest_reissue): operator-signed, same device, higher serial.

        The hub cannot widen it (the signature covers it); it only refuses one that names
        another device's keys or address, or does not raise the serial, and then serves it
        at ``GET /api/manifest/{id}`` where the device agent picks it up.
        """
        row = self.ctx.store.peer(device_id)
        if row is None or row.state != "enrolled":
            raise FnError("device_unknown", f"no enrolled device {device_id!r}")
        new = manifest_mod.verify(signed, self.ctx.operator_public)
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
        self.ctx.store.record_peer(
            public_key=row.public_key,
            device_id=device_id,
            device_key=row.device_key,
            address=row.address,
            profile=row.profile,
            token_id=row.token_id,
            manifest=signed,
        )
        self.ctx.store.log("manifest_reissued", device_id, f"serial {old.get('serial')} -> {new.serial}")
        self.ctx.bus.publish("manifest_updated", {"device_id": device_id, "serial": new.serial})
        return {"device_id": device_id, "serial": new.serial, "accepted": True, "reissued": True}

    def current_manifest(self, device_id: str) -> dict[str, Any]:
        """The signed manifest the hub serves a device (public data: the device verifies it)."""
        row = self.ctx.store.peer(device_id)
        if row is None or row.state != "enrolled" or row.manifest is None:
            raise FnError("device_unknown", f"no enrolled device {device_id!r}")
        return {"device_id": device_id, "serial": row.manifest_serial, "manifest": row.manifest}
