"""The hub's peers: the ledger joined with the live interface and the store, and the
operator API's add / remove / revoke (revoke is the kill switch: answered once the peer is
off the interface; the Matrix kick follows in the background)."""

from __future__ import annotations

import logging
from typing import Any

from meshagents import trace
from meshagents.apps.wg_hub.context import HubContext, key32
from meshagents.apps.wg_hub.matrix import MatrixService
from meshagents.errors import FnError
from meshagents.runtime.api import call

log = logging.getLogger("wg_hub")


class PeerService:
    """Peers as the operator sees and changes them."""

    def __init__(self, ctx: HubContext, matrix: MatrixService) -> None:
        self.ctx = ctx
        self.matrix = matrix

    def list(self) -> list[dict[str, Any]]:
        live: dict[str, dict[str, Any]] = {}
        try:
            status = call("wg_status", caller="wg_hub", **self.ctx.wg_args)
            live = {p["public_key"]: p for p in status["peers"]}
        except FnError as exc:
            log.error("wg_status failed: %s", exc)
        rows = self.ctx.store.peers()
        out = []
        records = []
        if self.ctx.paths.ledger_path.exists():
            with self.ctx.paths.ledger() as led:
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

    def add(self, public_key: str, name: str | None, preshared: bool) -> dict[str, Any]:
        pub = key32(public_key, "public_key")
        out: dict[str, Any] = call(
            "wg_peer_add", caller="wg_hub", public_key=pub, name=name, preshared=preshared, **self.ctx.wg_args
        )
        self.ctx.sync_ledger()
        if out.get("created"):
            self.ctx.store.log("peer_added", str(out["name"]), "operator API")
            self.ctx.bus.publish(
                "peer_added", {"device_id": out["name"], "address": out["address"], "public_key": pub}
            )
        return out

    def remove(self, device_id: str) -> dict[str, Any]:
        name = self.ctx.ledger_name(device_id)
        out: dict[str, Any] = call("wg_peer_remove", caller="wg_hub", peer=name, **self.ctx.wg_args)
        self.ctx.sync_ledger()
        row = self.ctx.store.peer(name)
        if row is not None and row.state == "enrolled":
            self.ctx.store.set_peer_state(row.public_key, "removed")
        self.ctx.store.log("peer_removed", name, "operator API")
        self.ctx.bus.publish("peer_removed", {"device_id": name, "address": out["address"]})
        return out

    def revoke(self, device_id: str) -> dict[str, Any]:
        rid = f"revoke:{device_id}"  # stage stamps (meshagents.trace; off unless a bench asks)
        trace.stamp("hub.revoke", rid)
        name = self.ctx.ledger_name(device_id)
        # answered once the peer is off the interface and revoked in the ledger (the config's git
        # commit follows in the background): the kill switch's latency is the caller's
        out: dict[str, Any] = call(
            "wg_peer_revoke", caller="wg_hub", peer=name, defer_config=True, **self.ctx.wg_args
        )
        self.ctx.sync_ledger()  # the ledger's revoke on disk before anything else (a power cut)
        trace.stamp("hub.revoke.off_interface", rid)
        self.ctx.store.revoke(name, "operator API")
        trace.stamp("hub.revoke.stored", rid)
        log.warning("peer_revoked device=%s (removed live in %s ms)", name, out.get("live_removed_ms"))
        self.ctx.bus.publish("peer_revoked", {"device_id": name, "address": out["address"]})
        trace.stamp("hub.revoke.published", rid)
        # After the kill switch bit, and off the caller's path (a Matrix login and kick take
        # hundreds of ms): take the device's Matrix user out of its room. The outcome is a
        # ``matrix_kicked`` event and a hub_log row.
        if self.ctx.cfg.matrix is not None:
            self.matrix.kick_in_background(name)
            out["matrix_kick"] = "started"
        else:
            out["matrix_kick"] = None
        return out
