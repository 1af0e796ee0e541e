"""Pure view models for the cockpit panels: hub and bot JSON in, rows for the templates out.

    badge(peer, now, stale_after_s) -> "online" | "stale" | "revoked"
    age_text(seconds) -> "4 s" | "3 min" | "2 h" | "5 d" | "never"
    bytes_text(n) -> "1.2 MiB";  rate_text(bytes_per_s) -> "3.4 KiB/s"
    RateTracker().update(public_key, rx, tx, ts) -> (rx_rate, tx_rate) | (None, None)
    mesh_rows(peers, rates, now, stale_after_s) -> (live rows, revoked rows)
    cap_rows(rows, limit) -> (rows shown: stale first, then online; count left out)
    device_matrix(peers, bot_devices, now, operator_key=None) -> DeviceMatrix (capabilities x devices)
    containers(peers, bot_devices) -> list[ContainerRow]
    approval_rows(approvals, now) -> pending first, with age and the matrix.to link
    audit_summary(audit_json) -> AuditView ("verified" or "broken at seq N")
    manifest_signature(manifest, operator_key, now) -> "signed" | "self-signed" | "expired"
                                                       | "bad signature" | "-"

No I/O and no clock (the signature check is the trust core's pure ``manifest.verify``):
``now`` is a parameter, so every rule here is unit-tested with
recorded JSON shapes of the hub's ``GET /api/peers`` / ``GET /api/audit/{id}`` and the
bot's ``GET /approvals`` / ``GET /devices``.
"""

from __future__ import annotations

import time
import urllib.parse
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from meshagents.errors import FnError
from meshagents.trust import manifest as manifest_mod

DOCKER_PREFIX = "docker.container."
DEEP_PREFIX = "cont-"
MATRIX_ID_SAFE = "!$:@.-_~=+"  # kept literal in matrix.to links (room, event and user id characters)


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def age_text(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    s = max(0, int(seconds))
    if s < 120:
        return f"{s} s"
    if s < 2 * 3600:
        return f"{s // 60} min"
    if s < 2 * 86400:
        return f"{s // 3600} h"
    return f"{s // 86400} d"


def bytes_text(n: float | None) -> str:
    if n is None:
        return "-"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"  # pragma: no cover - the loop always returns


def rate_text(rate: float | None) -> str:
    return "-" if rate is None else f"{bytes_text(rate)}/s"


def badge(peer: Mapping[str, Any], now: float, stale_after_s: float) -> str:
    """``revoked`` wins; else ``online`` while the last handshake is younger than the threshold."""
    if peer.get("status") == "revoked":
        return "revoked"
    hs = _num(peer.get("latest_handshake"))
    if hs is not None and hs > 0 and now - hs < stale_after_s:
        return "online"
    return "stale"


class RateTracker:
    """Byte rates from successive counter samples per public key (a counter reset gives no rate)."""

    def __init__(self) -> None:
        self._last: dict[str, tuple[float, float, float]] = {}
        self.rates: dict[str, tuple[float | None, float | None]] = {}

    def update(self, key: str, rx: float, tx: float, ts: float) -> tuple[float | None, float | None]:
        before = self._last.get(key)
        self._last[key] = (rx, tx, ts)
        rate: tuple[float | None, float | None] = (None, None)
        if before is not None:
            dt = ts - before[2]
            if dt > 0 and rx >= before[0] and tx >= before[1]:
                rate = ((rx - before[0]) / dt, (tx - before[1]) / dt)
            elif dt <= 0:
                rate = self.rates.get(key, (None, None))
        self.rates[key] = rate
        return rate

    def forget(self, keep: Iterable[str]) -> None:
        wanted = set(keep)
        for k in [k for k in self._last if k not in wanted]:
            self._last.pop(k, None)
            self.rates.pop(k, None)


@dataclass(frozen=True)
class MeshRow:
    id: str
    name: str
    address: str
    public_key: str
    badge: str
    handshake_age: str
    rx: str
    tx: str
    rx_rate: str
    tx_rate: str
    endpoint: str


def _mesh_row(
    p: Mapping[str, Any], badge_text: str, rates: Mapping[str, tuple[float | None, float | None]], now: float
) -> MeshRow:
    key = str(p.get("public_key") or "")
    hs = _num(p.get("latest_handshake"))
    rx_rate, tx_rate = rates.get(key, (None, None))
    return MeshRow(
        id=str(p.get("id") or p.get("name") or key),
        name=str(p.get("name") or p.get("id") or key[:8]),
        address=str(p.get("address") or ""),
        public_key=key,
        badge=badge_text,
        handshake_age=age_text(None if hs is None or hs <= 0 else now - hs),
        rx=bytes_text(_num(p.get("rx_bytes")) or 0),
        tx=bytes_text(_num(p.get("tx_bytes")) or 0),
        rx_rate=rate_text(rx_rate),
        tx_rate=rate_text(tx_rate),
        endpoint=str(p.get("endpoint") or ""),
    )


def _by_name(p: Mapping[str, Any]) -> str:
    return str(p.get("name") or p.get("id") or "")


def mesh_rows(
    peers: Sequence[Mapping[str, Any]],
    rates: Mapping[str, tuple[float | None, float | None]],
    now: float,
    stale_after_s: float,
) -> tuple[list[MeshRow], list[MeshRow]]:
    """Live rows (active peers) and revoked rows; removed peers are left out. Sorted by name."""
    live: list[MeshRow] = []
    revoked: list[MeshRow] = []
    for p in sorted(peers, key=_by_name):
        status = p.get("status", "active")
        if status == "removed":
            continue
        row = _mesh_row(p, badge(p, now, stale_after_s), rates, now)
        (revoked if status == "revoked" else live).append(row)
    return live, revoked


@dataclass(frozen=True)
class MeshView:
    """What the Mesh panel shows: ``cap_rows(mesh_rows(...)[0], limit)`` and the counts."""

    shown: list[MeshRow]
    total: int
    hidden: int
    revoked: list[MeshRow]
    online: int


def mesh_view(
    peers: Sequence[Mapping[str, Any]],
    rates: Mapping[str, tuple[float | None, float | None]],
    now: float,
    stale_after_s: float,
    limit: int,
) -> MeshView:
    """The Mesh panel's rows for a mesh of any size: the same rows as ``cap_rows`` of
    ``mesh_rows``, but a row (ages, byte and rate texts) is built only for the peers
    shown; the others cost a badge each (10,000 peers: 500 rows built, not 10,000)."""
    live: list[tuple[Mapping[str, Any], str]] = []
    revoked: list[MeshRow] = []
    for p in sorted(peers, key=_by_name):
        status = p.get("status", "active")
        if status == "removed":
            continue
        b = badge(p, now, stale_after_s)
        if status == "revoked":
            revoked.append(_mesh_row(p, b, rates, now))
        else:
            live.append((p, b))
    online = sum(1 for _, b in live if b == "online")
    chosen = live
    if len(live) > limit:
        chosen = ([x for x in live if x[1] != "online"] + [x for x in live if x[1] == "online"])[:limit]
    shown = [_mesh_row(p, b, rates, now) for p, b in chosen]
    return MeshView(shown, len(live), len(live) - len(chosen), revoked, online)


def cap_rows(rows: list[MeshRow], limit: int) -> tuple[list[MeshRow], int]:
    """At most ``limit`` rows for a big mesh: the stale ones first (what needs a look), then
    online ones, each group by name; returns (rows shown, rows left out)."""
    if len(rows) <= limit:
        return rows, 0
    stale = [r for r in rows if r.badge != "online"]
    online = [r for r in rows if r.badge == "online"]
    shown = (stale + online)[:limit]
    return shown, len(rows) - len(shown)


def apply_stats(peers: list[dict[str, Any]], changed: Sequence[Mapping[str, Any]]) -> int:
    """Fold a hub ``peer_stats`` event's ``changed`` list into the peer dicts; returns rows touched."""
    by_key = {p.get("public_key"): p for p in peers}
    touched = 0
    for c in changed:
        p = by_key.get(c.get("public_key"))
        if p is None:
            continue
        p["latest_handshake"] = c.get("latest_handshake")
        p["rx_bytes"] = c.get("rx_bytes", p.get("rx_bytes", 0))
        p["tx_bytes"] = c.get("tx_bytes", p.get("tx_bytes", 0))
        touched += 1
    return touched


# devices -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Cell:
    granted: bool
    approval: bool = False


@dataclass(frozen=True)
class DeviceRow:
    id: str
    address: str
    profile: str
    serial: str
    expires: str
    expired: bool
    agent_state: str
    room: str
    has_manifest: bool
    cells: tuple[Cell, ...]
    signature: str = "-"  # see manifest_signature()
    unsandboxed: bool = False  # the agent said "sandbox: weak": its commands run without isolation


@dataclass
class DeviceMatrix:
    capabilities: list[str] = field(default_factory=list)
    rows: list[DeviceRow] = field(default_factory=list)
    manifests_missing: int = 0


def _capabilities(manifest: Mapping[str, Any] | None) -> dict[str, bool]:
    """capability name -> requires_approval."""
    out: dict[str, bool] = {}
    if not isinstance(manifest, Mapping):
        return out
    for cap in manifest.get("capabilities") or []:
        if isinstance(cap, Mapping) and isinstance(cap.get("name"), str):
            out[cap["name"]] = bool(cap.get("requires_approval"))
    return out


def _date(ts: float | None) -> str:
    if ts is None:
        return "-"

    return time.strftime("%Y-%m-%d", time.gmtime(ts))


def manifest_signature(manifest: Mapping[str, Any] | None, operator_key: str | None, now: float) -> str:
    """``signed`` (by the pinned operator key), ``self-signed`` (valid for the key it names, no
    key pinned), ``expired``, ``bad signature``, or ``-`` (no manifest)."""
    if not isinstance(manifest, Mapping):
        return "-"
    raw = dict(manifest)
    key = operator_key or raw.get("operator_key")
    if not isinstance(key, str):
        return "bad signature"
    try:
        manifest_mod.verify(raw, key, now=int(now))
    except FnError as exc:
        return "expired" if exc.code == "manifest_expired" else "bad signature"
    return "signed" if operator_key else "self-signed"


def bot_by_device(bot_devices: Sequence[Mapping[str, Any]] | None) -> dict[str, Mapping[str, Any]]:
    return {str(d.get("device")): d for d in bot_devices or [] if isinstance(d, Mapping)}


def device_matrix(
    peers: Sequence[Mapping[str, Any]],
    bot_devices: Sequence[Mapping[str, Any]] | None,
    now: float,
    operator_key: str | None = None,
) -> DeviceMatrix:
    """Enrolled, non-revoked devices by capabilities (union of every manifest's names)."""
    bot = bot_by_device(bot_devices)
    devices = [p for p in peers if p.get("enrolled") and p.get("status", "active") == "active"]
    caps_by_dev = {str(p.get("id")): _capabilities(p.get("manifest")) for p in devices}
    columns = sorted({c for caps in caps_by_dev.values() for c in caps})
    out = DeviceMatrix(capabilities=columns)
    for p in sorted(devices, key=lambda p: str(p.get("id"))):
        dev_id = str(p.get("id"))
        manifest = p.get("manifest") if isinstance(p.get("manifest"), Mapping) else None
        caps = caps_by_dev[dev_id]
        expires = _num(manifest.get("expires_at")) if manifest else None
        serial = manifest.get("serial") if manifest else p.get("manifest_serial")
        info = bot.get(dev_id, {})
        if manifest is None:
            out.manifests_missing += 1
        out.rows.append(
            DeviceRow(
                id=dev_id,
                address=str(p.get("address") or ""),
                profile=str(p.get("profile") or "-"),
                serial="-" if serial is None else str(serial),
                expires=_date(expires),
                expired=expires is not None and expires <= now,
                agent_state=str(info.get("agent_state") or "unknown")
                if bot_devices is not None
                else "unknown",
                room=str(info.get("room_alias") or ""),
                has_manifest=manifest is not None,
                cells=tuple(Cell(c in caps, caps.get(c, False)) for c in columns),
                signature=manifest_signature(manifest, operator_key, now),
                unsandboxed=info.get("sandbox") == "weak",
            )
        )
    return out


# containers ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class ContainerRow:
    host: str
    container: str
    mode: str  # light | deep
    room: str
    capabilities: str


def _container_names(cap: Mapping[str, Any]) -> list[str]:
    values = cap.get("values")
    if isinstance(values, Mapping) and isinstance(values.get("container"), list):
        return [str(v) for v in values["container"]]
    constraints = cap.get("constraints")
    if isinstance(constraints, Mapping) and isinstance(constraints.get("container"), str):
        return [constraints["container"]]
    return ["*"]  # the capability covers every container of the host


def containers(
    peers: Sequence[Mapping[str, Any]], bot_devices: Sequence[Mapping[str, Any]] | None
) -> list[ContainerRow]:
    """Light mode: docker.container.* capabilities in a host's manifest (room = the host's room).
    Deep mode: a peer named ``cont-<name>`` (its own room ``#cont-<name>``)."""
    bot = bot_by_device(bot_devices)
    rows: list[ContainerRow] = []
    for p in peers:
        if p.get("status", "active") != "active":
            continue
        dev_id = str(p.get("id") or p.get("name") or "")
        info = bot.get(dev_id, {})
        if dev_id.startswith(DEEP_PREFIX):
            host = str(info.get("host") or "own peer")
            room = str(info.get("room_alias") or f"#{dev_id}")
            rows.append(ContainerRow(host, dev_id[len(DEEP_PREFIX) :], "deep", room, "own manifest"))
            continue
        manifest = p.get("manifest")
        if not isinstance(manifest, Mapping):
            continue
        per: dict[str, list[str]] = {}
        for cap in manifest.get("capabilities") or []:
            name = cap.get("name") if isinstance(cap, Mapping) else None
            if isinstance(name, str) and name.startswith(DOCKER_PREFIX):
                for c in _container_names(cap):
                    per.setdefault(c, []).append(name[len(DOCKER_PREFIX) :])
        room = str(info.get("room_alias") or f"#dev-{dev_id}")
        for c in sorted(per):
            rows.append(ContainerRow(dev_id, c, "light", room, ", ".join(sorted(set(per[c])))))
    rows.sort(key=lambda r: (r.host, r.container))
    return rows


# approvals -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class ApprovalRow:
    approval_id: str
    request_id: str
    device: str
    capability: str
    args_preview: str
    requester: str
    age: str
    expires_in: str
    state: str
    pending: bool
    link: str


def matrix_to(room_id: str, event_id: str) -> str:
    """``https://matrix.to/#/<room>/<event>`` as Element writes it (``!`` ``$`` ``:`` kept);
    anything that would end the path (``/ ? # %``, spaces) is escaped."""
    if not room_id:
        return ""

    def q(part: str) -> str:
        return urllib.parse.quote(part, safe=MATRIX_ID_SAFE)

    base = f"https://matrix.to/#/{q(room_id)}"
    return f"{base}/{q(event_id)}" if event_id else base


def approval_rows(approvals: Sequence[Mapping[str, Any]], now: float) -> list[ApprovalRow]:
    rows: list[ApprovalRow] = []
    for a in approvals:
        if not isinstance(a, Mapping):
            continue
        created = _num(a.get("created_at"))
        expires = _num(a.get("expires_at"))
        state = str(a.get("state") or "pending")
        rows.append(
            ApprovalRow(
                approval_id=str(a.get("approval_id") or ""),
                request_id=str(a.get("request_id") or ""),
                device=str(a.get("device") or ""),
                capability=str(a.get("capability") or ""),
                args_preview=str(a.get("args_preview") or "")[:200],
                requester=str(a.get("requester") or ""),
                age=age_text(None if created is None else now - created),
                expires_in="-"
                if expires is None
                else age_text(expires - now)
                if expires > now
                else "expired",
                state=state,
                pending=state == "pending",
                link=matrix_to(str(a.get("room_id") or ""), str(a.get("request_event_id") or "")),
            )
        )
    # pending first (oldest first: it has waited longest), then decided ones newest first
    pending = sorted((r for r in rows if r.pending), key=lambda r: _created(approvals, r.approval_id))
    decided = sorted((r for r in rows if not r.pending), key=lambda r: -_created(approvals, r.approval_id))
    return pending + decided


def _created(approvals: Sequence[Mapping[str, Any]], approval_id: str) -> float:
    for a in approvals:
        if isinstance(a, Mapping) and str(a.get("approval_id")) == approval_id:
            return _num(a.get("created_at")) or 0.0
    return 0.0


# audit ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class AuditView:
    ok: bool
    status: str  # "verified" | "broken at seq N" | "empty"
    problem: str
    reason: str
    head_seq: int
    entries: list[dict[str, Any]]
    checkpoints: int


def audit_summary(data: Mapping[str, Any], recent: int = 20) -> AuditView:
    """The hub's ``GET /api/audit/{id}`` answer: ``{"entries": [...], "chain": ChainReport}``."""
    chain = data.get("chain") if isinstance(data.get("chain"), Mapping) else {}
    assert isinstance(chain, Mapping)
    entries = [e for e in data.get("entries") or [] if isinstance(e, dict)]
    ok = bool(chain.get("ok"))
    bad = chain.get("first_bad_seq")
    if not ok:
        status = f"broken at seq {bad}" if bad is not None else "broken"
    elif not entries:
        status = "empty"
    else:
        status = "verified"
    return AuditView(
        ok=ok,
        status=status,
        problem=str(chain.get("problem") or ""),
        reason=str(chain.get("reason") or ""),
        head_seq=int(chain.get("head_seq") or 0),
        entries=list(reversed(entries[-recent:])),
        checkpoints=int(chain.get("checkpoints") or 0),
    )
