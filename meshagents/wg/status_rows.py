"""wg_status's per-peer rows, built cheaply at 10,000 peers.

A row is a pure function of the peer's :class:`PeerState`, the ledger's name and address
for its key, and the time of the status. The UAPI parser hands back the *same* PeerState
object for a block unchanged since the last ``get`` (an idle peer), so such a peer's row
is the last row for that object with its handshake age and online flag moved to the new
time. Those rows are copied (:meth:`RowCache.prepare`) while the daemon is still building
its answer, and picked up by identity once it is parsed (:meth:`RowCache.rows`): only the
rows of peers whose state changed are built after the answer.

Every caller gets what a row built from scratch gives: fresh dicts and fresh
``allowed_ips`` lists on every call (the kept rows are templates, never handed out).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any, NamedTuple

from meshagents.wg.model import PeerState

Names = dict[str, tuple[str, str]]
Row = dict[str, Any]
_UNKNOWN = (None, None)


def build_row(peer: PeerState, names: Names, t: float, window: float) -> Row:
    """The row of one peer from scratch (wg_status's contract, field by field)."""
    key, ips, endpoint, handshake, rx, tx, _keepalive, _psk = peer
    name, addr = names.get(key, _UNKNOWN)
    age = None if handshake is None else max(0.0, t - handshake)
    return {
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


class Prepared(NamedTuple):
    """Rows made ahead of an answer, and the cache entries they came from (held, so that
    no PeerState they were keyed by is freed and its id reused before they are looked up)."""

    rows: dict[int, Row]
    held: dict[int, tuple[PeerState, Row]]


class RowCache:
    """The last call's rows of one interface, by the identity of their PeerState.

    Keyed by ``id()``: every PeerState keyed here is held by the cache itself (and by the
    :class:`Prepared` made from it), so no other live object can have its id. Valid for
    one ``names`` object (the ledger cache hands out the same dict until the ledger
    changes); another one starts afresh. Entries are replaced whole, never changed in
    place, so calls in two threads at once each see one consistent set.
    """

    def __init__(self, window: float) -> None:
        self.window = window
        self._names: Names | None = None
        self._rows: dict[int, tuple[PeerState, Row]] = {}

    def prepare(self, names: Names, t: float) -> Prepared:
        """Fresh rows at time ``t`` for the peers of the last call, in case they are idle."""
        held = self._rows
        if names is not self._names and (names or self._names):
            return Prepared({}, {})
        window = self.window
        out: dict[int, Row] = {}
        for ident, (peer, template) in held.items():
            row = template.copy()
            row["allowed_ips"] = list(peer[1])
            handshake = peer[3]
            if handshake is not None:
                age = max(0.0, t - handshake)
                row["handshake_age_s"] = round(age, 3)
                row["online"] = age < window
            out[ident] = row
        return Prepared(out, held)

    def rows(self, peers: Sequence[PeerState], prepared: Prepared, names: Names, t: float) -> list[Row]:
        """The rows of ``peers`` at ``t``: prepared ones where the state is the same object."""
        ids = list(map(id, peers))
        out: list[Row | None] = list(map(prepared.rows.get, ids))
        if None not in out and len(ids) == len(prepared.held):
            return out  # type: ignore[return-value]  # the same peers, all idle
        entries: list[tuple[PeerState, Row] | None] = list(map(prepared.held.get, ids))
        window = self.window
        for i, row in enumerate(out):
            if row is None:
                peer = peers[i]
                row = out[i] = build_row(peer, names, t, window)
                entries[i] = (peer, row.copy())  # its list is replaced in every copy made of it
        self._rows = dict(zip(ids, entries, strict=True))  # type: ignore[arg-type]
        self._names = names
        return out  # type: ignore[return-value]


_CACHES: dict[tuple[str, str], RowCache] = {}
_LOCK = threading.Lock()
_MAX = 8


def cache_for(interface: str, config_dir: str, window: float) -> RowCache:
    """The row cache of one interface (a few are kept: tests run several hubs in a process)."""
    key = (interface, config_dir)
    with _LOCK:
        got = _CACHES.pop(key, None) or RowCache(window)
        _CACHES[key] = got
        while len(_CACHES) > _MAX:
            _CACHES.pop(next(iter(_CACHES)))
        return got
