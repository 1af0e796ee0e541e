"""Where the bot learns the devices: their signed manifests, revoked marks and handshakes.

    directory = FileDirectory(Path("/etc/meshagents/manifests"), operator_key="<b64>")
    directory = HubDirectory(HubApi("http://127.0.0.1:8000", token), fallback=FileDirectory(...))
    await directory.refresh()          # re-read (the shell polls every ``poll_s`` <= 2 s)
    directory.devices()  -> {name: DeviceRecord}
    directory.mark_revoked(name)       # a revoke the bot just did, before the next poll shows it

Two implementations of one small protocol:

- ``FileDirectory`` reads a directory of signed manifest JSON files (``*.json``, one
  per device, as the hub issued them) and ``<name>.revoked`` marker files. With an
  ``operator_key`` each manifest's signature is checked (``manifest.verify``); a file
  that fails is skipped with a log line, never half-trusted. This is the hub-less
  set-up and what the tests use.
- ``HubDirectory`` reads the hub's operator API ``GET /api/peers``: each peer's
  ``status`` (``revoked``), ``latest_handshake`` and — where the hub includes it — the
  signed ``manifest``; manifests the hub does not list come from the fallback
  ``FileDirectory``. Only devices with a manifest are commandable; handshakes are
  known for every hub peer (``handshake_known``), which feeds the stale alerts.

``HubApi`` is the adapter to the hub's operator API (``peers()``, ``revoke(device)``,
``events(last_event_id)``); tests use a stand-in with the same methods (``LocalHub``
marks files revoked).

Push, not poll: ``HubDirectory.follow(on_change)`` reads the hub's event stream
(``GET /api/events``, server-sent events, resumed with ``Last-Event-ID`` after a
reconnect or a hub restart). It re-reads ``GET /api/peers`` only when (re)connected,
when a peer is added (its manifest comes with it) or when the hub says ``resync``; a
``peer_revoked`` event marks the device at once, and ``peer_stats`` carries handshakes.
While the stream is up (``streaming``) the shell's periodic refresh is only a safety net.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any, Protocol

import httpx
from httpx_sse import aconnect_sse

from meshagents import tls
from meshagents.apps.agents_and_robots.commands import view_from_manifest
from meshagents.apps.agents_and_robots.core import DeviceInfo
from meshagents.errors import FnError
from meshagents.trust import manifest as trust_manifest
from meshagents.trust.models import Manifest
from meshagents.trust.models import parse as parse_model

log = logging.getLogger("agents_and_robots")

REVOKED_SUFFIX = ".revoked"


@dataclass(frozen=True)
class DeviceRecord:
    """One device as the bot knows it."""

    name: str
    manifest: Manifest | None = field(default=None, hash=False)
    revoked: bool = False
    last_handshake: float | None = None
    handshake_known: bool = False  # the hub reported this peer (handshakes are real data)

    @property
    def device_id(self) -> str:
        return self.manifest.device_id if self.manifest else self.name

    @property
    def matrix_user(self) -> str | None:
        return self.manifest.matrix_user if self.manifest else None

    @cached_property
    def _view(self) -> dict[str, dict[str, Any]]:
        # Built once per record (a new manifest is a new record): a dump of every capability
        # on every message was ~1.7 ms of the bot's decision per command (bench_e2e, profiled).
        return view_from_manifest(self.manifest) if self.manifest is not None else {}

    def info(self) -> DeviceInfo:
        """What the pure core needs: the manifest view, its approvers, the revoked mark."""
        if self.manifest is None:
            return DeviceInfo(self.name, {}, frozenset(), self.revoked)
        return DeviceInfo(self.name, self._view, frozenset(self.manifest.approvers),
                          self.revoked, self.manifest.device_id)


class DeviceDirectory(Protocol):
    async def refresh(self) -> None: ...

    def devices(self) -> dict[str, DeviceRecord]: ...

    def mark_revoked(self, name: str) -> None: ...


def load_manifest(data: dict[str, Any], operator_key: str | None) -> Manifest:
    """A signed manifest dict -> Manifest; checked against ``operator_key`` when given."""
    if operator_key:
        return trust_manifest.verify(data, operator_key)
    return parse_model(Manifest, data, code="manifest_invalid")


def device_name(manifest: Manifest) -> str:
    """The name rooms and commands use (``#dev-<name>``): the manifest's device_name."""
    return manifest.device_name or manifest.device_id


class _KnownDevices:
    """What both directories keep between refreshes: the last records, and the devices revoked
    from this bot (still shown revoked before the hub or the files catch up)."""

    def __init__(self) -> None:
        self._devices: dict[str, DeviceRecord] = {}
        self._revoked_here: set[str] = set()

    def devices(self) -> dict[str, DeviceRecord]:
        return dict(self._devices)

    def mark_revoked(self, name: str) -> None:
        self._revoked_here.add(name)
        rec = self._devices.get(name)
        if rec is not None:
            self._devices[name] = replace(rec, revoked=True)


class FileDirectory(_KnownDevices):
    """Signed manifest files in one directory (see the module docstring)."""

    def __init__(self, path: Path, *, operator_key: str | None = None) -> None:
        super().__init__()
        self.path = path
        self.operator_key = operator_key
        self._cache: dict[Path, tuple[int, int, Manifest | None]] = {}  # path -> (mtime_ns, size, manifest)

    def _read(self, file: Path) -> Manifest | None:
        st = file.stat()
        hit = self._cache.get(file)
        if hit is not None and hit[:2] == (st.st_mtime_ns, st.st_size):
            return hit[2]
        manifest: Manifest | None
        try:
            manifest = load_manifest(trust_manifest.load_file(file), self.operator_key)
        except FnError as exc:
            log.error("skipping manifest %s: %s (%s)", file, exc.message, exc.code)
            manifest = None
        self._cache[file] = (st.st_mtime_ns, st.st_size, manifest)
        return manifest

    def scan(self) -> dict[str, DeviceRecord]:
        out: dict[str, DeviceRecord] = {}
        if not self.path.is_dir():
            return out
        revoked = {p.name[: -len(REVOKED_SUFFIX)] for p in self.path.glob(f"*{REVOKED_SUFFIX}")}
        for file in sorted(self.path.glob("*.json")):
            try:
                manifest = self._read(file)
            except OSError as exc:
                log.error("cannot read %s: %s", file, exc.strerror)
                continue
            if manifest is None:
                continue
            name = device_name(manifest)
            old = out.get(name)
            if old is not None and old.manifest is not None and old.manifest.serial >= manifest.serial:
                continue  # two files for one device: the higher serial wins
            out[name] = DeviceRecord(name, manifest, revoked=name in revoked or name in self._revoked_here)
        return out

    async def refresh(self) -> None:
        self._devices = await asyncio.to_thread(self.scan)


class HubApi:
    """The hub's operator API (bearer token), the calls the bot makes."""

    def __init__(self, base_url: str, token: str, *, timeout: float = 10.0,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {token}"}
        self.timeout = timeout
        self._transport = transport  # tests: the hub's ASGI app in-process

    async def _request(self, method: str, path: str) -> dict[str, Any]:
        try:
            async with httpx.AsyncClient(
                timeout=self.timeout, transport=self._transport, verify=tls.context()
            ) as client:
                resp = await client.request(method, self.base_url + path, headers=self._headers)
        except httpx.HTTPError as exc:
            raise FnError("hub_unreachable", f"{method} {path}: {type(exc).__name__}") from exc
        try:
            body = resp.json()
        except ValueError:
            body = {}
        if resp.status_code >= 400:
            code = body.get("error") if isinstance(body, dict) else None
            message = body.get("message") if isinstance(body, dict) else None
            text = message or f"{method} {path}: HTTP {resp.status_code}"
            raise FnError(str(code or "hub_error"), str(text))
        if not isinstance(body, dict):
            raise FnError("hub_error", f"{method} {path}: not a JSON object")
        return body

    async def peers(self) -> list[dict[str, Any]]:
        body = await self._request("GET", "/api/peers")
        peers = body.get("peers")
        return [p for p in peers if isinstance(p, dict)] if isinstance(peers, list) else []

    async def revoke(self, device: str) -> dict[str, Any]:
        return await self._request("POST", f"/api/peers/{device}/revoke")

    async def events(self, last_event_id: str | None = None) -> AsyncIterator[HubEvent]:
        """The hub's event stream until it ends or fails (``FnError hub_unreachable``)."""
        headers = dict(self._headers)
        if last_event_id:
            headers["Last-Event-ID"] = last_event_id
        timeout = httpx.Timeout(self.timeout, read=None)  # idle streams only carry pings
        url = self.base_url + "/api/events"
        try:
            async with (
                httpx.AsyncClient(timeout=timeout, transport=self._transport, verify=tls.context()) as client,
                aconnect_sse(client, "GET", url, headers=headers) as src,
            ):
                if src.response.status_code != 200:
                    raise FnError("hub_error", f"GET /api/events: HTTP {src.response.status_code}")
                async for sse in src.aiter_sse():
                    try:
                        data = json.loads(sse.data) if sse.data else {}
                    except ValueError:
                        continue
                    inner = data.get("data") if isinstance(data, dict) else None
                    yield HubEvent(sse.id or "", sse.event, inner if isinstance(inner, dict) else {})
        except httpx.HTTPError as exc:
            raise FnError("hub_unreachable", f"GET /api/events: {type(exc).__name__}") from exc


@dataclass(frozen=True)
class HubEvent:
    """One server-sent event of the hub: id (for Last-Event-ID), type, its data."""

    id: str
    type: str
    data: dict[str, Any]


class HubLike(Protocol):
    async def peers(self) -> list[dict[str, Any]]: ...

    async def revoke(self, device: str) -> dict[str, Any]: ...


def records_from_peers(
    peers: list[dict[str, Any]],
    manifests: dict[str, DeviceRecord],
    operator_key: str | None = None,
) -> dict[str, DeviceRecord]:
    """Merge the hub's peer rows with manifests (pure). A peer's own ``manifest`` (if the
    hub includes it) wins over the file one; a device only in the files is kept as is."""
    out = dict(manifests)
    for peer in peers:
        name = str(peer.get("name") or peer.get("id") or "")
        if not name:
            continue
        manifest = out[name].manifest if name in out else None
        raw = peer.get("manifest")
        if isinstance(raw, dict):
            try:
                manifest = load_manifest(raw, operator_key)
            except FnError as exc:
                log.error("hub manifest of %s refused: %s (%s)", name, exc.message, exc.code)
        hs = peer.get("latest_handshake")
        last = float(hs) if isinstance(hs, (int, float)) and not isinstance(hs, bool) and hs > 0 else None
        revoked = str(peer.get("status", "")) == "revoked" or (name in out and out[name].revoked)
        out[name] = DeviceRecord(name, manifest, revoked, last, True)
    return out


class HubDirectory(_KnownDevices):
    """Peers from the hub's operator API, manifests from the hub or the fallback files."""

    def __init__(self, hub: HubLike, *, fallback: FileDirectory | None = None,
                 operator_key: str | None = None) -> None:
        super().__init__()
        self.hub = hub
        self.fallback = fallback
        self.operator_key = operator_key
        self.last_error: str | None = None
        self.streaming = False  # the event stream is connected (follow)
        self.last_event_id: str | None = None

    async def refresh(self) -> None:
        files: dict[str, DeviceRecord] = {}
        if self.fallback is not None:
            await self.fallback.refresh()
            files = self.fallback.devices()
        try:
            peers = await self.hub.peers()
        except FnError as exc:
            # keep what we knew: a hub restart must not make every device unknown
            self.last_error = f"{exc.code}: {exc.message}"
            log.warning("hub peers: %s", self.last_error)
            return
        self.last_error = None
        merged = records_from_peers(peers, files, self.operator_key)
        for name in self._revoked_here & set(merged):
            rec = merged[name]
            merged[name] = replace(rec, revoked=True)
        self._devices = merged

    # ------------------------------------------------------------------ push
    def apply_event(self, event: HubEvent) -> bool:
        """Apply what an event says without a round trip; True when the whole state must be
        re-read (a new peer brings a manifest; ``resync``; a removal)."""
        name = str(event.data.get("device_id") or "")
        if event.type == "peer_revoked" and name:
            self.mark_revoked(name)  # the hub has cut it already: refuse from this instant
            return False
        if event.type == "peer_stats":
            changed = event.data.get("changed")
            for row in changed if isinstance(changed, list) else []:
                peer = str(row.get("name") or "") if isinstance(row, dict) else ""
                rec = self._devices.get(peer)
                hs = row.get("latest_handshake") if isinstance(row, dict) else None
                if rec is not None and isinstance(hs, (int, float)) and not isinstance(hs, bool) and hs > 0:
                    self._devices[peer] = replace(rec, last_handshake=float(hs), handshake_known=True)
            return False
        return event.type in ("peer_added", "peer_removed", "manifest_signed", "resync")

    async def follow(self, on_change: Callable[[], Awaitable[None]], *, max_backoff_s: float = 10.0) -> None:
        """Follow the hub's events forever (until cancelled), calling ``on_change`` after each
        change; reconnects with backoff, resuming from the last event id it saw."""
        events = getattr(self.hub, "events", None)
        if events is None:
            return
        backoff = 0.2
        while True:
            try:
                first = True
                async for event in events(self.last_event_id):
                    if first:  # connected: the full state once, then only changes
                        self.streaming, first, backoff = True, False, 0.2
                        await self.refresh()
                        await on_change()
                    if event.id:
                        self.last_event_id = event.id
                    if self.apply_event(event):
                        await self.refresh()
                    await on_change()
            except asyncio.CancelledError:
                self.streaming = False
                raise
            except Exception as exc:  # the hub restarts, the mesh drops: try again, quietly
                log.info("hub event stream: %s; reconnecting in %.1f s", exc, backoff)
            self.streaming = False
            await asyncio.sleep(backoff)
            backoff = min(max_backoff_s, backoff * 2)


class LocalHub:
    """A hub stand-in for a hub-less set-up and tests: revoking writes ``<name>.revoked``
    next to the manifests (FileDirectory reads it on its next refresh)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    async def peers(self) -> list[dict[str, Any]]:
        return []

    async def revoke(self, device: str) -> dict[str, Any]:
        marker = self.path / f"{device}{REVOKED_SUFFIX}"
        await asyncio.to_thread(marker.write_text, "revoked\n")
        return {"device_id": device, "revoked": True}
