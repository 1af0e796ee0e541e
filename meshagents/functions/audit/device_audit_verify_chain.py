"""device_audit_verify_chain: verify one device's audit hash chain (or every device's).

Where the chains are: ``<state>/audit/<device>.sqlite`` (the agent's default, decided
in ``meshagents/trust/paths.py``) and whatever chain an agent config names
(``<state>/device_agent/config.json`` and each ``--config``). Each chain is checked with
its local signed checkpoints (``<device>.checkpoints.jsonl``) and the key schedule of
its manifests (``<device>.manifests.jsonl`` plus the config's current manifest,
verified against the operator key), and with ``--against-hub`` against the copy the
hub holds (``GET /api/audit/<device>`` on the operator API; bearer token from
``$MESHAGENTS_HUB_TOKEN`` or the local key store's ``wg_hub/api_token``).

Nothing verified is not ok: ``--all`` finding no chain, a named device without one, or
(``--all --against-hub``) a device among the hub's active peers without a chain here,
fail with ``audit_missing`` naming them. A broken chain is ``audit_chain_broken`` with
each device's report (``problem``: hash_mismatch, gap, reorder, truncated,
bad_checkpoint_signature, checkpoint_key_refused, checkpoint_invalid, checkpoint_dropped,
checkpoint_chain_broken, checkpoint_missing, hub_mismatch).
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import os
from pathlib import Path
from typing import Any

import httpx

from meshagents.errors import FnError, UsageError
from meshagents.runtime.catalog import function
from meshagents.trust.audit import AuditLog, compare_with_hub
from meshagents.trust.checkpoints import KeySchedule, ManifestHistory, manifests_path, schedule_from
from meshagents.trust.keystore import DEVICE_KEY, load_signing_key, open_keystore
from meshagents.trust.manifest import load_file
from meshagents.trust.paths import AuditSite, audit_path, audit_sites
from meshagents.trust.rotation import current_operator_key
from meshagents.trust.signing import public_b64

HUB_TOKEN_ENV = "MESHAGENTS_HUB_TOKEN"  # noqa: S105 - the name of a variable, not a secret
HUB_TOKEN_KEY = "wg_hub/api_token"  # noqa: S105 - a key store name


def _local_device_key() -> str | None:
    try:
        return public_b64(load_signing_key(DEVICE_KEY, open_keystore()))
    except FnError:
        return None


def _schedule(site: AuditSite) -> tuple[KeySchedule, int]:
    """The key schedule of the site's manifests that the operator signed, and how many there are."""
    manifests = ManifestHistory(manifests_path(site.path)).load()
    if site.manifest_path is not None:
        with contextlib.suppress(FnError):  # unreadable current manifest: the history alone speaks
            manifests.append(load_file(site.manifest_path))
    keys = [site.operator_key] if site.operator_key else []
    with contextlib.suppress(FnError):  # no pinned operator key here: the config's alone
        keys.append(current_operator_key())
    schedule = schedule_from(manifests, keys, site.device)
    return schedule, len(schedule.spans)


class Hub:
    """The hub's operator API, read-only: its peers and its copy of each chain."""

    def __init__(self, url: str) -> None:
        token = os.environ.get(HUB_TOKEN_ENV)
        if not token:
            raw = open_keystore().get(HUB_TOKEN_KEY)
            if raw is None:
                raise FnError("key_missing", f"--against-hub needs ${HUB_TOKEN_ENV} or {HUB_TOKEN_KEY}")
            token = base64.urlsafe_b64encode(raw).decode().rstrip("=")
        self.url = url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {token}"}

    def get(self, path: str) -> Any:
        try:
            resp = httpx.get(self.url + path, headers=self._headers, timeout=30.0)
        except httpx.HTTPError as exc:
            raise FnError("hub_unreachable", f"{self.url}: {exc}") from exc
        if resp.status_code != 200:
            try:
                code = resp.json().get("error")
            except ValueError:
                code = None
            raise FnError(str(code or f"hub_http_{resp.status_code}"), f"{self.url}{path}: {resp.text[:200]}")
        return resp.json()

    def active_peers(self) -> list[str]:
        peers = self.get("/api/peers").get("peers", [])
        return sorted(str(p["name"]) for p in peers if p.get("status") not in ("revoked", "removed"))

    def copy(self, device: str) -> tuple[list[tuple[int, str]], list[dict[str, Any]], dict[str, Any]]:
        got = self.get(f"/api/audit/{device}")
        entries = [(int(e["seq"]), str(e["hash"])) for e in got.get("entries", [])]
        return entries, list(got.get("checkpoints", [])), dict(got.get("chain", {}))


def _verify(site: AuditSite, pinned: str | None, hub: Hub | None) -> dict[str, Any]:
    schedule, offered = _schedule(site)
    with AuditLog(site.path) as log:
        report = log.verify(pinned, schedule=schedule if schedule.spans else None)
        if hub is not None:
            entries, checkpoints, hub_chain = hub.copy(site.device)
            head = max((s for s, _ in entries), default=0)
            report = dataclasses.replace(report, hub_head_seq=head)
            found = compare_with_hub(log.links(), entries, checkpoints)
            if found is not None and (report.ok or (report.first_bad_seq or 0) > found[0]):
                report = dataclasses.replace(
                    report, ok=False, first_bad_seq=found[0], problem=found[1], reason=found[2]
                )
    out = dataclasses.asdict(report)
    out.update(path=str(site.path), manifests=offered, key_schedule=[s[2] for s in schedule.spans])
    if hub is not None:
        out["hub_chain_ok"] = hub_chain.get("ok")
    return out


@function(id="device_audit_verify_chain", group="audit")
def device_audit_verify_chain(
    device: str | None = None,
    all: bool = False,
    device_key: str | None = None,
    config: list[Path] | None = None,
    against_hub: bool = False,
    hub_url: str | None = None,
) -> dict[str, Any]:
    """Verify audit chains (--device NAME or --all) with their signed checkpoints, --against-hub too.

    Args:
        device: device whose chain to verify (found under <state>/audit/ or through an agent config);
            give this or all.
        all: verify every chain the agents on this machine write; no chain at all fails with audit_missing.
        device_key: base64 ed25519 public key the checkpoints must be signed by; default: the key the
            operator-signed manifest in force names for each checkpoint's time.
        config: a device agent's config.json naming a chain kept elsewhere (repeat the option); the
            default <state>/device_agent/config.json is always read.
        against_hub: also compare each chain with the copy the hub holds (GET /api/audit/<device>) and,
            with --all, name every active hub peer whose chain is missing here.
        hub_url: the hub's operator API base URL (http://10.42.0.1:8000); default: the one an agent
            config names.
    """
    if bool(device) == bool(all):
        raise UsageError("give exactly one of --device NAME or --all")
    sites = audit_sites(tuple(config or ()))
    hub: Hub | None = None
    if against_hub:
        url = hub_url or next((s.hub_url for s in sites.values() if s.hub_url), None)
        if not url:
            raise UsageError("--against-hub needs --hub-url (no agent config here names the hub)")
        hub = Hub(url)
    elif hub_url:
        raise UsageError("--hub-url is used with --against-hub")
    names = sorted(sites) if all else [str(device)]
    if all and hub is not None:
        names = sorted(set(names) | set(hub.active_peers()))
    missing = {
        n: str(sites[n].path if n in sites else audit_path(n))
        for n in names
        if n not in sites or not sites[n].path.exists()
    }
    if not names:
        raise FnError("audit_missing", "no audit chain on this machine: nothing was verified", missing={})
    if missing:
        raise FnError(
            "audit_missing",
            f"no audit chain for {', '.join(sorted(missing))}" + (" (a hub peer)" if hub else ""),
            missing=missing,
        )
    pinned = device_key or _local_device_key()
    reports = {name: _verify(sites[name], pinned, hub) for name in names}
    bad = {n: r for n, r in reports.items() if not r["ok"]}
    if bad:
        name, first = next(iter(bad.items()))
        raise FnError(
            "audit_chain_broken",
            f"{name}: {first['problem']} at seq {first['first_bad_seq']}: {first['reason']}",
            devices=reports,
        )
    return {"ok": True, "device_key_pinned": pinned is not None, "devices": reports}
