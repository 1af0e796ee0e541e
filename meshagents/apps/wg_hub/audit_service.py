"""Device audit chains on the hub: a device posts its entries, the operator reads the
chain's status — both checked against the device key recorded at enrollment."""

from __future__ import annotations

from typing import Any

from meshagents.apps.wg_hub import audit_ingest
from meshagents.apps.wg_hub.context import HubContext
from meshagents.errors import FnError


class AuditService:
    """Audit ingest and status per enrolled device."""

    def __init__(self, ctx: HubContext) -> None:
        self.ctx = ctx

    def _device_key(self, device_id: str) -> str:
        row = self.ctx.store.peer(device_id)
        if row is None:
            raise FnError("device_unknown", f"no enrolled device {device_id!r}")
        return row.device_key

    def post(self, device_id: str, body: Any) -> dict[str, Any]:
        return audit_ingest.ingest(self.ctx.store, device_id, self._device_key(device_id), body)

    def status(self, device_id: str) -> dict[str, Any]:
        return audit_ingest.chain_status(self.ctx.store, device_id, self._device_key(device_id))
