"""Deep mode's view of the WireGuard UAPI: the mesh layer's client (``meshagents.wg.uapi``)
with deep mode's error codes (``deep_attach_failed``, ``rejected_args``).

wireguard-go serves it on ``/var/run/wireguard/<iface>.sock``, one directory for
the whole machine, reachable from the root namespace whatever namespace the
interface lives in. Keys are hex on the wire and base64 everywhere else.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from pathlib import Path

from meshagents.errors import FnError
from meshagents.wg import uapi as wg_uapi
from meshagents.wg.keys import hex_to_b64
from meshagents.wg.model import PeerSpec

SOCKET_DIR = wg_uapi.SOCKET_DIR
TIMEOUT_S = 5.0

key_b64 = hex_to_b64


def _client(iface: str) -> wg_uapi.UapiClient:
    return wg_uapi.UapiClient(iface, socket_dir=SOCKET_DIR, timeout=TIMEOUT_S)


def socket_path(iface: str) -> Path:
    return _client(iface).path


def key_hex(key_b64_text: str) -> str:
    """A base64 WireGuard key as hex, else ``rejected_args``."""
    try:
        raw = base64.b64decode(key_b64_text, validate=True)
    except ValueError as exc:
        raise FnError("rejected_args", "a WireGuard key must be base64") from exc
    if len(raw) != 32:
        raise FnError("rejected_args", "a WireGuard key is 32 bytes")
    return raw.hex()


def is_stale(iface: str) -> bool:
    """True if the socket file exists but nobody listens on it any more."""
    return _client(iface).is_stale()


def configure(
    iface: str, *, private_key: str, peers: Iterable[PeerSpec], replace_peers: bool = True
) -> None:
    """Set the interface's key and peers (base64 keys); ``deep_attach_failed`` otherwise."""
    request = wg_uapi.render_set(private_key=private_key, replace_peers=replace_peers, peers=peers)
    try:
        _client(iface).set(request)
    except FnError as exc:
        raise FnError(
            "deep_attach_failed", f"WireGuard UAPI set on {iface}: {exc.message}", interface=iface
        ) from exc


def check_answers(iface: str) -> None:
    """The daemon answers a ``get`` with errno 0; ``deep_attach_failed`` otherwise."""
    client = _client(iface)
    try:
        err = wg_uapi.parse_errno(client.get_raw())
    except FnError as exc:
        message = f"WireGuard UAPI {client.path}: {exc.message}"
        raise FnError("deep_attach_failed", message, interface=iface) from exc
    if err != 0:
        raise FnError("deep_attach_failed", f"WireGuard UAPI get on {iface}: errno={err}", interface=iface)
