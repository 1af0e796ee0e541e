"""Hub operations: set up, tear down, status and drift of one mesh interface.

Each operation is idempotent and reports what it changed, so a second run of
``setup`` with the same arguments reports ``changed: []`` and makes no commit.
"""

from __future__ import annotations

import gc
import operator
import re
import sqlite3
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import replace
from itertools import compress, repeat
from pathlib import Path
from typing import Any

from meshagents.errors import FnError
from meshagents.wg import firewall, links, systemd
from meshagents.wg.allocation import parse_hub_address
from meshagents.wg.backend import BackendName, WgBackend, open_backend
from meshagents.wg.config import InterfaceSection, PeerSection, WgQuickConfig, render
from meshagents.wg.context import WgPaths
from meshagents.wg.keys import check_key, new_key_pair, public_from_private
from meshagents.wg.ledger import Ledger, cached_meta, cached_names
from meshagents.wg.model import DeviceState, PeerSpec, PeerState
from meshagents.wg.netns import check_netns, run

ONLINE_WINDOW_S = 180.0  # WireGuard's rekey window: older handshakes mean the peer is gone
_ONLINE = operator.itemgetter("online")  # summed in C over 10,000 rows
SYSCTL_FILE = Path("/etc/sysctl.d/99-meshagents-wg.conf")


def public_of(private_key: str) -> str:
    return public_from_private(private_key)


def spec_of(peer: PeerSection) -> PeerSpec:
    return PeerSpec(
        public_key=peer.public_key,
        allowed_ips=peer.allowed_ips,
        preshared_key=peer.preshared_key,
        endpoint=peer.endpoint,
        persistent_keepalive=peer.persistent_keepalive,
    )


def live_differences(cfg: WgQuickConfig, state: DeviceState) -> dict[str, list[str]]:
    """What differs between a config and the live device, per kind (empty lists: in sync)."""
    out: dict[str, list[str]] = {"interface": [], "missing_live": [], "extra_live": [], "changed": []}
    if cfg.interface.private_key and state.public_key != public_of(cfg.interface.private_key):
        out["interface"].append("private_key")
    if cfg.interface.listen_port is not None and state.listen_port != cfg.interface.listen_port:
        out["interface"].append("listen_port")
    live = {p.public_key: p for p in state.peers}
    want = {p.public_key: p for p in cfg.peers}
    out["missing_live"] = sorted(set(want) - set(live))
    out["extra_live"] = sorted(set(live) - set(want))
    for key in sorted(set(want) & set(live)):
        w, got = want[key], live[key]
        if sorted(w.allowed_ips) != sorted(got.allowed_ips) or (w.preshared_key is not None) != (
            got.has_preshared_key
        ):
            out["changed"].append(key)
    return out


def in_sync(diff: dict[str, list[str]]) -> bool:
    return not any(diff.values())


def netns_of(led: Ledger, netns: str | None) -> str | None:
    """The namespace given ("" = the root one), else the one the hub was set up in."""
    if netns is not None:
        return netns or None
    return led.get_meta("netns") or None


def resolve_netns(paths: WgPaths, netns: str | None) -> str | None:
    if netns is not None or not paths.ledger_path.exists():
        return netns or None
    with paths.ledger() as led:
        return netns_of(led, netns)


def ensure_forwarding(netns: str | None) -> bool:
    if run(["sysctl", "-n", "net.ipv4.ip_forward"], netns).stdout.strip() == "1":
        return False
    run(["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"], netns)
    if netns is None:  # persist only for the machine itself, never for a test namespace
        SYSCTL_FILE.write_text("net.ipv4.ip_forward = 1\n", encoding="utf-8")
    return True


def new_private_key() -> str:
    return new_key_pair()["private_key"]


def sync_live(backend: WgBackend, cfg: WgQuickConfig) -> bool:
    """Make the live device match ``cfg``; True if it had to change anything."""
    created = backend.create()
    diff = live_differences(cfg, backend.state())
    if not created and in_sync(diff):
        return False
    backend.configure(
        private_key=cfg.interface.private_key,
        listen_port=cfg.interface.listen_port,
        peers=[spec_of(p) for p in cfg.peers],
        replace_peers=True,
    )
    return True


def setup(
    *,
    interface: str,
    address: str,
    listen_port: int,
    config_dir: Path,
    netns: str | None,
    endpoint: str | None,
    service_ports: Sequence[int],
    backend: BackendName = "auto",
    firewall_rules: bool = True,
) -> dict[str, Any]:
    netns = netns or None  # "" means the root namespace, like None
    hub = parse_hub_address(address)
    if not 0 < listen_port < 65536:
        raise FnError("invalid_port", f"listen port {listen_port} out of range")
    check_netns(netns)
    paths = WgPaths(interface, config_dir)
    repo = paths.repo()
    changed: list[str] = []
    if repo.ensure():
        changed.append("config_repo")
    with paths.locked():
        old = paths.read_config()
        private = old.interface.private_key if old and old.interface.private_key else new_private_key()
        check_key(private, "hub private key")
        base = old.interface if old else InterfaceSection()
        hooks = boot_hooks(paths, firewall_rules)
        extra = tuple(e for e in base.extra if e not in boot_hooks(paths, True)) + hooks
        # The ledger is the truth: a peer it marks removed or revoked never comes back from a
        # config that a crash left un-rewritten (revoke marks the ledger before the config).
        gone: set[str] = set()
        if paths.ledger_path.exists():
            with paths.ledger() as led:
                gone = {r.public_key for r in led.all() if r.status != "active"}
        cfg = WgQuickConfig(
            interface=replace(
                base, private_key=private, addresses=(str(hub),), listen_port=listen_port, extra=extra
            ),
            peers=tuple(p for p in old.peers if p.public_key not in gone) if old else (),
        )
        if repo.write(paths.conf_name, render(cfg)):
            changed.append("config")
        rules = firewall.render_rules(
            interface=interface, subnet=str(hub.network), listen_port=listen_port, service_ports=service_ports
        )
        # the file is the atomic replace script itself, so `nft -f <file>` (PostUp) is idempotent
        script = firewall.apply_script(interface, rules)
        rules_changed = firewall_rules and repo.write(paths.nft_name, script, mode=0o600)
        if rules_changed:
            changed.append("firewall_rules")
        commit = repo.commit(
            [paths.conf_name, *([paths.nft_name] if firewall_rules else [])], f"wg_hub_setup {interface}"
        )
        with paths.ledger() as led:
            wanted = {
                "role": "hub",
                "address": str(hub),
                "listen_port": str(listen_port),
                "netns": netns or "",
                **({"endpoint": endpoint} if endpoint else {}),
            }
            for k, v in wanted.items():
                if led.get_meta(k) != v:
                    led.set_meta(k, v)
                    changed.append(f"ledger:{k}")
        be = open_backend(interface, netns, backend)
        if be.exists() and not links.link_exists(interface, netns):
            # UAPI sockets are machine-wide: this name already runs in another namespace
            raise FnError(
                "interface_busy",
                f"a WireGuard interface {interface!r} exists outside netns {netns or 'root'}"
                " (interface names are machine-wide)",
            )
        if sync_live(be, cfg):
            changed.append("interface")
        if links.ensure_up(interface, str(hub), [], netns):
            changed.append("link")
        if ensure_forwarding(netns):
            changed.append("ip_forward")
        if firewall_rules and (rules_changed or not firewall.table_present(interface, netns)):
            firewall.apply(interface, rules, netns)
            changed.append("nftables")
        unit: str | None = None
        if netns is None and systemd.has_systemd():  # never for a hub inside a test namespace
            unit, unit_changed = systemd.install_unit(interface, paths.conf)
            if unit_changed:
                changed.append("systemd_unit")
            if systemd.hand_to_unit(interface, paths.conf):
                changed.append("systemd_unit_started")
    return {
        "interface": interface,
        "netns": netns,
        "backend": be.name,
        "public_key": public_of(private),
        "address": str(hub),
        "subnet": str(hub.network),
        "listen_port": listen_port,
        "endpoint": endpoint,
        "config": str(paths.conf),
        "commit": commit,
        "systemd_unit": unit,
        "changed": changed,
    }


def boot_hooks(paths: WgPaths, with_firewall: bool) -> tuple[tuple[str, str], ...]:
    """wg-quick ``PostUp``/``PostDown`` lines that restore forwarding and firewall at boot."""
    hooks: tuple[tuple[str, str], ...] = (("PostUp", "sysctl -q -w net.ipv4.ip_forward=1"),)
    if with_firewall:
        hooks += (
            ("PostUp", f"nft -f {paths.nft}"),
            ("PostDown", f"nft delete table inet {firewall.table_name(paths.interface)}"),
        )
    return hooks


def interface_down(
    *, interface: str, config_dir: Path, netns: str | None, backend: BackendName = "auto"
) -> dict[str, Any]:
    """Delete the live interface (which stops its wireguard-go) and our nftables table.

    The config, its git history and the ledger stay: ``wg_hub_setup`` brings it all back.
    """
    paths = WgPaths(interface, config_dir)
    ns = resolve_netns(paths, netns)
    check_netns(ns)
    be = open_backend(interface, ns, backend)
    deleted = be.delete()
    fw = firewall.remove(interface, ns)
    return {"interface": interface, "netns": ns, "interface_deleted": deleted, "firewall_removed": fw}


def status(
    *, interface: str, config_dir: Path, netns: str | None, with_drift: bool = False, now: float | None = None
) -> dict[str, Any]:
    # 10,000 peers are ~100,000 new acyclic objects (tuples, dicts, strings): the cyclic
    # collector would run dozens of times over them (and over the whole heap) while they
    # are built, a third of wg_status at 10,000 peers. None of them can form a cycle.
    enabled = gc.isenabled()
    gc.disable()
    try:
        return _status(interface=interface, config_dir=config_dir, netns=netns, with_drift=with_drift,
                       now=now)
    finally:
        _skip_young_pass()
        if enabled:
            gc.enable()


def _skip_young_pass() -> None:
    """Move the objects made since the last collection to the oldest generation unscanned.

    With the collector re-enabled, the first allocation after a status would scan all of
    them (the ~100,000 acyclic row objects just built: ~1.5 ms at 10,000 peers) to find
    no garbage. ``freeze`` + ``unfreeze`` moves them in O(1) (two list splices) and resets
    the young count; a cycle among them is still found by the next full collection. Not
    done when someone else froze objects (``unfreeze`` would release theirs too).
    """
    if gc.get_freeze_count() == 0:
        gc.freeze()
        gc.unfreeze()


def _status(
    *, interface: str, config_dir: Path, netns: str | None, with_drift: bool, now: float | None
) -> dict[str, Any]:
    paths = WgPaths(interface, config_dir)
    names: dict[str, tuple[str, str]] = {}
    meta: dict[str, str] = {}
    if paths.ledger_path.exists():
        try:
            names, meta = cached_names(paths.ledger_path), cached_meta(paths.ledger_path)
        except sqlite3.Error:  # e.g. no tables yet: the ledger makes its schema
            with paths.ledger() as led:
                names = led.names()
                meta = {"netns": led.get_meta("netns") or ""}
    ns = (netns or None) if netns is not None else (meta.get("netns") or None)  # as resolve_netns
    be = open_backend(interface, ns)
    # The answer itself proves the interface is there: one request (one UAPI connection, one
    # netlink socket) on the way that works; only a failed one asks whether it exists, so a
    # missing interface is still wg_interface_missing and any other failure keeps its code.
    try:
        state = be.state()
    except FnError as exc:
        if exc.code == "wg_interface_missing" or not be.exists():
            raise FnError(
                "wg_interface_missing", f"interface {interface} is not up (netns {ns or 'root'})"
            ) from exc
        raise
    t = time.time() if now is None else now
    # the kernel's netlink decoder builds every PeerState afresh: nothing to find again
    rows_of = _ROWS.rows if be.name == "userspace" else _fresh_rows
    peers = rows_of(state.peers, names, t)
    out: dict[str, Any] = {
        "interface": interface,
        "netns": ns,
        "backend": be.name,
        "public_key": state.public_key,
        "listen_port": state.listen_port,
        "peer_count": len(peers),
        "online_count": sum(map(_ONLINE, peers)),
        "peers": peers,
    }
    if with_drift:
        out["drift"] = drift_of(paths, be, state)
    return out


Names = dict[str, tuple[str, str]]


_ALLOWED = operator.itemgetter(1)  # PeerState.allowed_ips, by position


class StatusRows:
    """The rows of wg_status, built from the last call's where a peer is the same.

    The UAPI parser hands back the very PeerState object of a block unchanged since its
    last answer (an idle peer), so a peer ``is`` one of the last call's when nothing of it
    moved (wireguard-go lists its peers in a different order each time: found by object,
    not by place). Such a peer's row differs from last time's only in the handshake age
    and the online flag (they depend on the time of the call): each row of the last call
    is kept as a template (immutable values only: the allowed IPs as the tuple) under the
    ``id`` of its PeerState (the last call's peers are kept alive with them, so no other
    object has that id). The rows handed out are copies made in C (``dict.copy``), each
    given a fresh list of allowed IPs (in C: ``map`` + ``setitem``); only peers with a
    handshake get their age and flag computed again. A caller may change the rows it got:
    the templates are never handed out. With no peer the same as last time (every peer's
    counters moved) the rows are built as before this class and no templates are kept;
    the next call with idle peers builds its rows the same way and keeps copies of them
    (~1.5 ms at 10,000 peers) as the templates.
    """

    def __init__(self) -> None:
        # (names, the last call's peers by id, their templates by id or None, the ids of
        # those with a handshake): read once and replaced whole per call, so two threads'
        # calls never mix halves
        self._last: tuple[Names | None, dict[int, PeerState], dict[int, dict[str, Any]] | None, set[int]] = (
            None, {}, None, set())  # fmt: skip

    def rows(self, peers: tuple[PeerState, ...], names: Names, t: float) -> list[dict[str, Any]]:
        prev_names, known, by_id, timed = self._last
        ids = list(map(id, peers))
        if names is not prev_names or not any(map(known.__contains__, ids)):
            self._last = (names, dict(zip(ids, peers, strict=True)), None, set())
            return _fresh_rows(peers, names, t)
        if by_id is None:  # the last call kept no templates: rows built, templates copied from them
            rows = _fresh_rows(peers, names, t)
            templates = list(map(dict.copy, rows))
            deque(map(operator.setitem, templates, repeat("allowed_ips"), map(_ALLOWED, peers)), 0)
            self._last = (names, dict(zip(ids, peers, strict=True)), dict(zip(ids, templates, strict=True)),
                          {i for i, p in zip(ids, peers, strict=True) if p[3] is not None})  # fmt: skip
            return rows
        got = list(map(by_id.get, ids))
        found: list[dict[str, Any]] = [
            tp if tp is not None else self._template(p, names) for p, tp in zip(peers, got, strict=True)
        ] if None in got else got  # type: ignore[assignment]  # fmt: skip
        if found is not got or len(found) != len(by_id):  # other peers than last time
            by_id = dict(zip(ids, found, strict=True))
            timed = {i for i, tp in by_id.items() if tp["latest_handshake"] is not None}
            self._last = (names, dict(zip(ids, peers, strict=True)), by_id, timed)
        # else the same peers as last time: everything kept as it is
        rows = list(map(dict.copy, found))
        deque(map(operator.setitem, rows, repeat("allowed_ips"), map(list, map(_ALLOWED, peers))), 0)
        window = ONLINE_WINDOW_S
        if timed:
            for row in compress(rows, map(timed.__contains__, ids)):
                age = max(0.0, t - row["latest_handshake"])
                row["handshake_age_s"] = round(age, 3)
                row["online"] = age < window
        return rows

    @staticmethod
    def _template(p: PeerState, names: Names) -> dict[str, Any]:
        key, ips, endpoint, handshake, rx, tx, _keepalive, _psk = p
        name, addr = names.get(key, (None, None))
        return {"public_key": key, "name": name, "address": addr, "endpoint": endpoint, "allowed_ips": ips,
                "latest_handshake": handshake, "handshake_age_s": None, "rx_bytes": rx, "tx_bytes": tx,
                "online": False}  # fmt: skip


def _fresh_rows(peers: tuple[PeerState, ...], names: Names, t: float) -> list[dict[str, Any]]:
    """Every peer's row of wg_status, in one pass (no PeerState attribute look-ups)."""
    rows: list[dict[str, Any]] = []
    append, named, unknown, window = rows.append, names.get, (None, None), ONLINE_WINDOW_S
    # unpacked by position (PeerState's field order): 10,000 attribute look-ups x 7 showed
    for key, ips, endpoint, handshake, rx, tx, _keepalive, _psk in peers:
        name, addr = named(key, unknown)
        age = None if handshake is None else max(0.0, t - handshake)
        append(
            {
                "public_key": key,
                "name": name,
                "address": addr,
                "endpoint": endpoint,
                "allowed_ips": list(ips),
                "latest_handshake": handshake,
                "handshake_age_s": None if age is None else round(age, 3),
                "rx_bytes": rx,
                "tx_bytes": tx,
                "online": age is not None and age < window,
            }
        )
    return rows


#: One per process: the hub polls one interface; another interface's call just finds no
#: peer the same and builds its rows (the peers' identity, not the interface, is the key).
_ROWS = StatusRows()


SECRET_LINE = re.compile(r"^([ +-]?\s*(?:PrivateKey|PresharedKey)\s*=\s*).*$", re.MULTILINE | re.IGNORECASE)


def redact(text: str) -> str:
    """Drift diffs go to logs and chat: never with key material in them."""
    return SECRET_LINE.sub(r"\1<redacted>", text)


def drift_of(paths: WgPaths, be: WgBackend | None, state: DeviceState | None) -> dict[str, Any]:
    """Manual edits (uncommitted changes in the config repo) and config-vs-live differences."""
    names = [paths.conf_name, paths.nft_name]
    uncommitted = paths.repo().uncommitted(names)
    out: dict[str, Any] = {
        "uncommitted": uncommitted,
        "diff": redact(paths.repo().diff(names)) if uncommitted else "",
    }
    cfg = paths.read_config()
    if cfg is None:
        out.update(drift=bool(uncommitted), config_missing=True)
        return out
    if state is None and be is not None and be.exists():
        state = be.state()
    if state is None:
        out.update(drift=True, interface_missing=True)
        return out
    live = live_differences(cfg, state)
    out.update(live)
    out["drift"] = bool(uncommitted) or not in_sync(live)
    return out


def drift(*, interface: str, config_dir: Path, netns: str | None) -> dict[str, Any]:
    paths = WgPaths(interface, config_dir)
    ns = resolve_netns(paths, netns)
    be = open_backend(interface, ns)
    out = drift_of(paths, be, None)
    out["interface"] = interface
    return out
