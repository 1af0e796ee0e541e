"""What every hub service shares: the config, the event bus, the one store, the
WireGuard facts of the hub, and the few helpers more than one service needs.

One ``HubContext`` per hub process; the services (enrollment, peers, tokens, audit,
Matrix kicks) each take it and keep no state of their own beyond it.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from meshagents.apps.wg_hub.config import HubConfig
from meshagents.apps.wg_hub.events import EventBus
from meshagents.apps.wg_hub.install_bundle import BundleStore
from meshagents.apps.wg_hub.store import HubStore, hold_open
from meshagents.errors import FnError
from meshagents.runtime.api import call
from meshagents.trust.keystore import CONTROLLER_KEY, OPERATOR_KEY, load_signing_key
from meshagents.trust.rotation import current_operator_key
from meshagents.trust.signing import public_b64
from meshagents.wg.context import WgPaths
from meshagents.wg.hub import public_of
from meshagents.wg.keys import check_key

log = logging.getLogger("wg_hub")


@dataclass(frozen=True)
class HubFacts:
    public_key: str
    mesh_address: str  # 10.42.0.1
    subnet: str  # 10.42.0.0/24
    prefixlen: int
    listen_port: int
    endpoint: str | None


def _key32(value: str, what: str) -> str:
    try:
        return check_key(value, what)
    except FnError as exc:
        raise FnError("invalid_key", exc.message, field=what) from exc


def key32(value: str, what: str) -> str:
    """A WireGuard-shaped key (32 bytes, base64), else ``invalid_key`` naming the field."""
    try:
        return check_key(value, what)
    except FnError as exc:
        raise FnError("invalid_key", exc.message, field=what) from exc


class HubContext:
    """The shared state of the hub's services (checks the WireGuard hub and keys exist)."""

    def __init__(self, cfg: HubConfig, bus: EventBus) -> None:
        self.cfg = cfg
        self.bus = bus
        self.paths = WgPaths(cfg.interface, cfg.config_dir)
        self.store = HubStore(cfg.db_path)
        self._ledger_keeper: sqlite3.Connection | None = None
        self.hold_ledger()
        self.bundles = BundleStore(cfg.install_root)  # served at /install (install_routes)
        self.facts = self._facts()
        self.operator_public  # noqa: B018 - fail at start, not at the first enrollment, without a key
        if cfg.manifest_signing != "offline":
            # the manifest signer: the operator key unless the config names another (see docs/hub.md)
            load_signing_key(cfg.manifest_key)
        self.controllers = [public_b64(load_signing_key(CONTROLLER_KEY)), *cfg.controllers]

    @property
    def operator_public(self) -> str:
        """The operator's public key, read on each use so a rotation takes effect without a restart."""
        if self.cfg.manifest_signing == "offline":
            # the operator key stays on the operator's machine: the hub only knows its public half
            return self.cfg.operator_public_key or current_operator_key()
        return public_b64(load_signing_key(OPERATOR_KEY))

    # facts -----------------------------------------------------------------------------------
    def _facts(self) -> HubFacts:
        wg = self.paths.require_config()
        if not wg.interface.private_key or not wg.interface.addresses:
            raise FnError("hub_not_configured", f"{self.paths.conf} lacks PrivateKey or Address")
        iface = ipaddress.IPv4Interface(wg.interface.addresses[0])
        endpoint = self.cfg.endpoint
        if endpoint is None and self.paths.ledger_path.exists():
            with self.paths.ledger() as led:
                endpoint = led.get_meta("endpoint")
        port = wg.interface.listen_port or 51820
        if endpoint is None and self.cfg.public_host not in ("0.0.0.0", "::"):  # noqa: S104
            endpoint = f"{self.cfg.public_host}:{port}"
        if endpoint is not None and ":" not in endpoint:
            endpoint = f"{endpoint}:{port}"
        return HubFacts(
            public_key=public_of(wg.interface.private_key),
            mesh_address=str(iface.ip),
            subnet=str(iface.network),
            prefixlen=iface.network.prefixlen,
            listen_port=port,
            endpoint=endpoint,
        )

    @property
    def wg_args(self) -> dict[str, Any]:
        return {"interface": self.cfg.interface, "config_dir": self.cfg.config_dir, "netns": self.cfg.netns}

    def operator_hosts(self) -> list[str]:
        return list(self.cfg.operator_hosts) or [self.facts.mesh_address, "127.0.0.1"]

    def hold_ledger(self) -> None:
        """Keep the WireGuard ledger open for the hub's life, as the store keeps operations.db
        (``store.hold_open``): every ledger use here and in the wg_peer_* calls opens and closes
        it, and each close was a checkpoint with an fsync (~3 ms quiet, ~15 ms under load;
        inside the revoke's ``off_interface`` stage). Once it exists: it may not at the start."""
        if self._ledger_keeper is None and self.paths.ledger_path.exists():
            try:
                self._ledger_keeper = hold_open(self.paths.ledger_path, "peers")
            except sqlite3.Error as exc:  # only a speed-up: every use opens its own connection
                log.warning("cannot hold the ledger open: %s", exc)

    def sync_ledger(self) -> None:
        """Put the ledger's last commits on disk: called right after every ``wg_peer_*`` call
        the hub makes (they write the ledger), before it answers.

        With the ledger held open (``hold_ledger``) its commits stay in the WAL without an
        fsync (``synchronous=NORMAL``); the checkpoint at every close used to be what put a
        revoke or an address allocation on disk before the answer. One fsync of the WAL file
        (what ``synchronous=FULL`` does per commit; ~0.6 ms) keeps that: a power cut after
        the answer never brings a revoked peer back, nor hands its address out twice."""
        wal = Path(f"{self.paths.ledger_path}-wal")
        try:
            fd = os.open(wal, os.O_RDONLY)
        except FileNotFoundError:  # no WAL: the close that checkpointed it synced the main file
            return
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def close(self) -> None:
        """At the hub's exit: the connections that keep the ledger and the store open."""
        keeper, self._ledger_keeper = self._ledger_keeper, None
        if keeper is not None:
            keeper.close()
        self.store.close()

    def ledger_name(self, device_id: str) -> str:
        if not self.paths.ledger_path.exists():
            raise FnError("peer_unknown", f"no peer {device_id!r}")
        self.hold_ledger()
        with self.paths.ledger() as led:
            rec = led.by_name(device_id)
        if rec is None:
            raise FnError("peer_unknown", f"no peer {device_id!r}")
        return rec.name

    def undo_peer(self, wg_pub: str) -> None:
        """Take a peer off again (a half-done enrollment, a refusal); errors go to the log."""
        try:
            call("wg_peer_remove", caller="wg_hub", peer=wg_pub, **self.wg_args)
            self.sync_ledger()
        except FnError as exc:  # keep the original error; this one goes to the log
            log.error("could not remove the half-enrolled peer: %s", exc)
