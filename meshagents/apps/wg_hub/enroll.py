"""The hub's operations — the layer under the HTTP apps, one facade over its services.

    hub = Hub(cfg, bus)                  # checks the WireGuard hub and the keys exist
    hub.enroll(token, wg_public_key, device_key) -> dict        # the /enroll answer
    hub.refused(token, reason) -> dict                          # the device refused its manifest
    hub.peers() / hub.add_peer(...) / hub.remove_peer(id) / hub.revoke_peer(id)
    hub.create_token(device_name, profile, ttl_s) -> dict
    hub.audit_post(device_id, body) / hub.audit_get(device_id)

Each job is a service over the one store (``HubContext``): ``enrollment`` (enroll,
refusals), ``manifests`` (offline signing, re-issues), ``peers``, ``tokens``,
``audit_service`` and ``matrix`` (accounts, rooms, kicks). Catalog functions are called
through ``meshagents.runtime.api.call(..., caller="wg_hub")`` so each call is timed and
counted (declared in app.md ``uses_functions``).
"""

from __future__ import annotations

from typing import Any

from meshagents.apps.wg_hub.audit_service import AuditService
from meshagents.apps.wg_hub.config import HubConfig
from meshagents.apps.wg_hub.context import HubContext, HubFacts
from meshagents.apps.wg_hub.enrollment import KEEPALIVE, EnrollmentService
from meshagents.apps.wg_hub.events import EventBus
from meshagents.apps.wg_hub.manifests import ManifestService
from meshagents.apps.wg_hub.matrix import MatrixService
from meshagents.apps.wg_hub.peers import PeerService
from meshagents.apps.wg_hub.tokens import TokenService, api_token, new_api_token
from meshagents.errors import FnError

__all__ = ["KEEPALIVE", "Hub", "HubFacts", "api_token", "new_api_token"]


class Hub:
    """The hub's services wired over one context; the HTTP apps call these methods."""

    def __init__(self, cfg: HubConfig, bus: EventBus) -> None:
        self.ctx = HubContext(cfg, bus)
        self.tokens = TokenService(self.ctx)
        self.matrix = MatrixService(self.ctx)
        self.enrollment = EnrollmentService(self.ctx, self.tokens, self.matrix)
        self.manifests = ManifestService(self.ctx, self.tokens)
        self.peer_service = PeerService(self.ctx, self.matrix)
        self.audit = AuditService(self.ctx)
        # what the HTTP apps read directly
        self.cfg, self.bus, self.paths, self.store = cfg, bus, self.ctx.paths, self.ctx.store
        self.facts = self.ctx.facts
        self.bundles = self.ctx.bundles

    def operator_hosts(self) -> list[str]:
        return self.ctx.operator_hosts()

    # enrollment
    def enroll(self, token: str, wg_public_key: str, device_key: str) -> dict[str, Any]:
        return self.enrollment.enroll(token, wg_public_key, device_key)

    def refused(self, token: str, reason: str) -> dict[str, Any]:
        return self.enrollment.refused(token, reason)

    # manifests
    def manifest_for(self, token: str) -> tuple[bool, dict[str, Any]]:
        return self.manifests.manifest_for(token)

    def pending(self) -> list[dict[str, Any]]:
        return self.manifests.pending()

    def sign_pending(self, device_id: str, signed: dict[str, Any]) -> dict[str, Any]:
        return self.manifests.sign_pending(device_id, signed)

    def reissue(self, device_id: str, signed: dict[str, Any]) -> dict[str, Any]:
        return self.manifests.reissue(device_id, signed)

    def current_manifest(self, device_id: str) -> dict[str, Any]:
        return self.manifests.current_manifest(device_id)

    # peers
    def peers(self) -> list[dict[str, Any]]:
        return self.peer_service.list()

    def add_peer(self, public_key: str, name: str | None, preshared: bool) -> dict[str, Any]:
        return self.peer_service.add(public_key, name, preshared)

    def remove_peer(self, device_id: str) -> dict[str, Any]:
        return self.peer_service.remove(device_id)

    def revoke_peer(self, device_id: str) -> dict[str, Any]:
        return self.peer_service.revoke(device_id)

    # tokens
    def create_token(
        self, device_name: str, profile: str, ttl_s: int, *, bundle_sha256: str | None = None
    ) -> dict[str, Any]:
        return self.tokens.create(device_name, profile, ttl_s, bundle_sha256=bundle_sha256)

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

    # audit
    def audit_post(self, device_id: str, body: Any) -> dict[str, Any]:
        return self.audit.post(device_id, body)

    def audit_get(self, device_id: str) -> dict[str, Any]:
        return self.audit.status(device_id)
