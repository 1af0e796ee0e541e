"""Peer operations on a hub: add, remove, revoke — ledger, live device and config in one step.

Order matters. ``add``: ledger (allocation) → config file → live → commit; a live
failure puts the previous config file back. ``remove``/``revoke``: ledger first (the
truth a restart follows), then live (the kill switch), then config and commit — which
a long-running caller (the hub) can let finish after it answered (``defer_config``).
"""

from __future__ import annotations

import logging
import re
import threading
import time
from pathlib import Path
from typing import Any

from meshagents.errors import FnError
from meshagents.wg.backend import open_backend
from meshagents.wg.config import PeerSection, render
from meshagents.wg.context import WgPaths
from meshagents.wg.hub import netns_of, spec_of
from meshagents.wg.keys import check_key
from meshagents.wg.ledger import Ledger, PeerRecord, Status

log = logging.getLogger("meshagents.wg")

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


def check_name(name: str) -> str:
    if not NAME_RE.match(name):
        raise FnError(
            "invalid_name", f"device name {name!r}: 1-63 of A-Z a-z 0-9 _ . - (not starting with . _ -)"
        )
    return name


def default_name(public_key: str) -> str:
    return "peer-" + re.sub(r"[^A-Za-z0-9]", "", public_key)[:10].lower()


def find(led: Ledger, who: str) -> PeerRecord:
    """A ledger record by public key or device name."""
    rec = led.by_key(who) or led.by_name(who)
    if rec is None:
        raise FnError("peer_unknown", f"no peer {who!r} in the ledger")
    return rec


def _result(rec: PeerRecord, **extra: Any) -> dict[str, Any]:
    return {
        "public_key": rec.public_key,
        "name": rec.name,
        "address": rec.address,
        "allowed_ips": [f"{rec.address}/32"],
        "status": rec.status,
        "preshared": rec.has_psk,
        **extra,
    }


def add(
    *,
    public_key: str,
    name: str | None,
    interface: str,
    config_dir: Path,
    netns: str | None,
    preshared_key: str | None = None,
    persistent_keepalive: int | None = None,
) -> dict[str, Any]:
    pub = check_key(public_key, "public key")
    if preshared_key is not None:
        check_key(preshared_key, "preshared key")
    if name is not None:
        check_name(name)
    paths = WgPaths(interface, config_dir)
    cfg = paths.require_config()
    hub_cidr = cfg.interface.addresses[0] if cfg.interface.addresses else None
    if hub_cidr is None:
        raise FnError("hub_not_configured", f"{paths.conf} has no Address")
    with paths.locked(), paths.ledger() as led:
        ns = netns_of(led, netns)
        cfg = paths.require_config()  # re-read under the lock
        rec = led.by_key(pub)
        if rec is not None and rec.status == "revoked":
            raise FnError("peer_revoked", f"key of {rec.name!r} was revoked; it can never be added again")
        if name is not None:
            other = led.by_name(name)
            if other is not None and other.public_key != pub:
                if other.status == "revoked":
                    raise FnError("peer_revoked", f"device {name!r} was revoked; its id can never be reused")
                raise FnError(
                    "name_taken", f"device name {name!r} belongs to another key (ids are never reused)"
                )
        if rec is not None and name is not None and rec.name != name:
            raise FnError("peer_conflict", f"this key is already device {rec.name!r}")
        created = rec is None
        if rec is None:
            rec = led.allocate(pub, name or default_name(pub), hub_cidr, preshared_key is not None)
        existing = cfg.peer(pub)
        psk = preshared_key if preshared_key is not None else (existing.preshared_key if existing else None)
        section = PeerSection(
            public_key=pub,
            allowed_ips=(f"{rec.address}/32",),
            name=rec.name,
            preshared_key=psk,
            persistent_keepalive=persistent_keepalive
            if persistent_keepalive is not None
            else (existing.persistent_keepalive if existing else None),
        )
        new_cfg = cfg.with_peer(section)
        repo = paths.repo()
        old_text = paths.conf.read_text(encoding="utf-8")
        config_changed = repo.write(paths.conf_name, render(new_cfg))
        be = open_backend(interface, ns)
        try:
            live = {p.public_key: p for p in be.state().peers}.get(pub)
            live_ok = live is not None and sorted(live.allowed_ips) == [f"{rec.address}/32"]
            if not live_ok or config_changed:
                be.configure(peers=[spec_of(section)])
        except BaseException:
            repo.write(paths.conf_name, old_text)
            if created:
                led.set_status(pub, "removed")
            raise
        if rec.status != "active" or rec.has_psk != (psk is not None):
            led.set_status(pub, "active", has_psk=psk is not None)
            rec = led.by_key(pub) or rec
        commit = (
            repo.commit([paths.conf_name], f"wg_peer_add {rec.name} {rec.address}")
            if config_changed
            else None
        )
    return _result(rec, created=created, changed=config_changed or created or not live_ok, commit=commit)


def remove(
    *,
    who: str,
    interface: str,
    config_dir: Path,
    netns: str | None,
    revoke: bool = False,
    defer_config: bool = False,
) -> dict[str, Any]:
    """Remove (or revoke) a peer: ledger, live device, then config and commit.

    With ``defer_config`` the call returns once the peer is marked in the ledger and off
    the live device (milliseconds); the config rewrite and its git commit (tens of ms:
    two git processes, an fsync) follow in a thread of this process that the interpreter
    waits for at exit. A crash in between leaves the peer in the config file only, and
    the ledger wins: ``wg_hub_setup`` never puts such a peer back.
    """
    paths = WgPaths(interface, config_dir)
    t0 = time.perf_counter()
    verb = "wg_peer_revoke" if revoke else "wg_peer_remove"
    with paths.locked(), paths.ledger() as led:
        ns = netns_of(led, netns)
        rec = find(led, who)
        be = open_backend(interface, ns)
        new_status: Status = "revoked" if revoke or rec.status == "revoked" else "removed"
        # The ledger first (durable, ~1 ms): whatever happens next, a restart never re-adds it.
        if rec.status != new_status:
            led.set_status(rec.public_key, new_status)
        # Then the kill switch, without reading the whole interface first (10,000 peers are
        # ~40 ms of UAPI text): removing a peer the device does not have is a no-op.
        up = be.exists()
        live_before = rec.status == "active" and up
        if up:
            be.remove_peers([rec.public_key])
        live_ms = (time.perf_counter() - t0) * 1000.0
        changed: bool | None = None
        commit: str | None = None
        if not defer_config:
            changed, commit = _drop_from_config(paths, rec, verb)
        final = led.by_key(rec.public_key) or rec
    if defer_config:
        threading.Thread(
            target=_drop_from_config_locked, args=(paths, rec, verb), name=f"{verb}-{rec.name}"
        ).start()  # not a daemon: a CLI process finishes it before it exits
        commit = "deferred"
    return _result(
        final,
        was_live=live_before,
        config_changed=changed,
        commit=commit,
        live_removed_ms=round(live_ms, 3),
    )


def _drop_from_config(paths: WgPaths, rec: PeerRecord, verb: str) -> tuple[bool, str | None]:
    cfg = paths.require_config()
    repo = paths.repo()
    changed = repo.write(paths.conf_name, render(cfg.without_peer(rec.public_key)))
    commit = repo.commit([paths.conf_name], f"{verb} {rec.name} {rec.address}") if changed else None
    return changed, commit


def _drop_from_config_locked(paths: WgPaths, rec: PeerRecord, verb: str) -> None:
    try:
        with paths.locked():
            _drop_from_config(paths, rec, verb)
    except Exception:  # the ledger already says so; the next setup rewrites the config
        log.exception("%s %s: config rewrite failed", verb, rec.name)


def lookup(*, who: str, interface: str, config_dir: Path) -> dict[str, Any] | None:
    """The ledger's record of a device (by key or name), or None: how other layers ask
    whether a device is ``active``, ``removed`` or ``revoked`` (the bot's ``peer_revoked``)."""
    paths = WgPaths(interface, config_dir)
    if not paths.ledger_path.exists():
        return None
    with paths.ledger() as led:
        rec = led.by_key(who) or led.by_name(who)
    return None if rec is None else _result(rec)
