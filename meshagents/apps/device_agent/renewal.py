"""Picking up a re-issued manifest: fetch from the hub, verify, install, say so.

    r = apply(pipeline, raw) -> Renewal | None     # None: nothing new; FnError: refused
    await poll_once(agent_config, pipeline, http) -> Renewal | None

The hub serves each enrolled device's current signed manifest at ``GET
{hub_url}/api/manifest/{device_id}`` (mesh only, no bearer: it is signed data). The
agent polls it (``manifest_poll_s``) and, for a manifest it has not got:

1. verifies the signature against the operator key pinned at enrollment (never the
   key the manifest names), that it is this device's (id, device key, WireGuard key,
   mesh address unchanged), and that its serial grows — the serial store refuses an
   older one for good (``manifest_serial_rollback``), so a hub replaying the previous
   manifest, or an old file put back, is refused;
2. writes it over ``manifest_path`` atomically (the pipeline re-reads the file);
3. appends an ``event`` entry ``manifest_updated`` to the audit chain (or
   ``manifest_refused`` with the code), and the shell posts a notice in the room.

A re-issue may go beyond the enrollment token's profile: the token bounded what the
hub could hand out at enrollment; a re-issue is a new decision of the operator key,
signed on the operator's machine with a higher serial (docs/protocol.md).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import httpx

from meshagents.apps.device_agent.pipeline import Pipeline
from meshagents.errors import FnError
from meshagents.fsutil import write_atomic
from meshagents.trust import manifest as trust_manifest

_IDENTITY = ("device_id", "device_key", "wg_public_key", "mesh_address")


@dataclass(frozen=True)
class Renewal:
    old_serial: int
    new_serial: int
    added: list[str]
    removed: list[str]
    changed: list[str]
    audit_seq: int

    def notice(self) -> str:
        parts = [f"manifest updated: serial {self.old_serial} → {self.new_serial}"]
        for label, names in (("added", self.added), ("removed", self.removed), ("changed", self.changed)):
            if names:
                parts.append(f"{label}: {', '.join(names)}")
        return "; ".join(parts)


def _refused(pipeline: Pipeline, code: str, message: str) -> FnError:
    pipeline.audit.append_event(
        "-", "manifest_refused", request_id="manifest", detail=f"{code}: {message}"[:1000]
    )
    return FnError(code, message)


def apply(pipeline: Pipeline, raw: Any) -> Renewal | None:
    """Install ``raw`` if it is a newer operator-signed manifest of this device."""
    current = pipeline.manifest()
    if not isinstance(raw, dict):
        raise _refused(pipeline, "manifest_invalid", "the hub's answer holds no manifest")
    if raw == current.model_dump(mode="json"):
        return None
    try:
        new = trust_manifest.verify(raw, pipeline.config.operator_key)
    except FnError as exc:
        raise _refused(pipeline, exc.code, exc.message) from exc
    old = current.model_dump(mode="json")
    moved = [k for k in _IDENTITY if raw.get(k) != old.get(k)]
    if moved:
        raise _refused(pipeline, "manifest_mismatch", f"the new manifest changes {moved}")
    if new.serial <= current.serial:
        raise _refused(
            pipeline, "manifest_serial_rollback", f"serial {new.serial} is not above {current.serial}"
        )
    try:
        pipeline.serials.check_and_record(new.device_id, new.serial)
    except FnError as exc:
        raise _refused(pipeline, exc.code, exc.message) from exc
    path = pipeline.config.manifest_path
    write_atomic(path, json.dumps(raw, indent=2, sort_keys=True) + "\n", mode=0o666, fsync=False)
    before = {c.name: c for c in current.capabilities}
    after = {c.name: c for c in new.capabilities}
    renewal = Renewal(
        old_serial=current.serial,
        new_serial=new.serial,
        added=sorted(set(after) - set(before)),
        removed=sorted(set(before) - set(after)),
        changed=sorted(n for n in set(before) & set(after) if before[n] != after[n]),
        audit_seq=0,
    )
    entry = pipeline.audit.append_event(
        "-", "manifest_updated", request_id="manifest", detail=renewal.notice()
    )
    pipeline.manifest()  # the pipeline now runs under the new one
    return Renewal(**{**renewal.__dict__, "audit_seq": entry.seq})


async def poll_once(
    pipeline: Pipeline, http: httpx.AsyncClient, refused: set[str] | None = None
) -> Renewal | None:
    """One look at the hub; ``refused`` keeps signatures already refused (one audit entry each)."""
    cfg = pipeline.config
    if not cfg.hub_url:
        return None
    resp = await http.get(f"{cfg.hub_url}/api/manifest/{cfg.device_id}")
    if resp.status_code != 200:
        return None
    body = resp.json()
    raw = body.get("manifest") if isinstance(body, dict) else None
    if not isinstance(raw, dict):
        return None  # a hub without the endpoint, or no manifest yet: nothing to judge
    sig = str(raw.get("signature"))
    if refused is not None and sig in refused:
        return None
    try:
        return apply(pipeline, raw)
    except FnError:
        if refused is not None:
            refused.add(sig)
        raise
