"""The few WireGuard UAPI calls deep mode needs (cross-platform text protocol).

wireguard-go serves it on ``/var/run/wireguard/<iface>.sock``, one directory for
the whole machine, reachable from the root namespace whatever namespace the
interface lives in. Keys are hex here and base64 everywhere else.
(The mesh layer has its own, fuller client; this one stays self-contained so
container enrollment has no dependency on the hub code.)
"""

from __future__ import annotations

import base64
import socket
from collections.abc import Sequence
from pathlib import Path

from meshagents.errors import FnError

SOCKET_DIR = Path("/var/run/wireguard")


def socket_path(iface: str) -> Path:
    return SOCKET_DIR / f"{iface}.sock"


def key_hex(key_b64: str) -> str:
    try:
        raw = base64.b64decode(key_b64, validate=True)
    except ValueError as exc:
        raise FnError("rejected_args", "a WireGuard key must be base64") from exc
    if len(raw) != 32:
        raise FnError("rejected_args", "a WireGuard key is 32 bytes")
    return raw.hex()


def key_b64(key_hex_text: str) -> str:
    return base64.b64encode(bytes.fromhex(key_hex_text)).decode()


def is_stale(iface: str) -> bool:
    """True if the socket file exists but nobody listens on it any more."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        try:
            s.connect(str(socket_path(iface)))
        except ConnectionRefusedError:
            return True
        except OSError:
            return False
    return False


def _exchange(iface: str, request: str, timeout: float = 5.0) -> str:
    path = socket_path(iface)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        try:
            s.connect(str(path))
            s.sendall(request.encode())
            data = b""
            while not data.endswith(b"\n\n"):
                part = s.recv(65536)
                if not part:
                    break
                data += part
        except OSError as exc:
            raise FnError("deep_attach_failed", f"WireGuard UAPI {path}: {exc}", interface=iface) from exc
    return data.decode()


def set_config(iface: str, lines: Sequence[str]) -> None:
    """Send ``set=1`` with ``lines``; raise unless the answer is ``errno=0``."""
    for line in lines:
        if "\n" in line:
            raise FnError("rejected_args", "UAPI lines cannot contain newlines")
    answer = _exchange(iface, "set=1\n" + "".join(f"{ln}\n" for ln in lines) + "\n")
    if "errno=0" not in answer.split("\n"):
        raise FnError(
            "deep_attach_failed", f"WireGuard UAPI set on {iface}: {answer.strip()}", interface=iface
        )


def get_config(iface: str) -> list[tuple[str, str]]:
    """The ``get=1`` answer as ordered key/value pairs (peers follow their public_key)."""
    answer = _exchange(iface, "get=1\n\n")
    if "errno=0" not in answer.split("\n"):
        raise FnError(
            "deep_attach_failed", f"WireGuard UAPI get on {iface}: {answer.strip()!r}", interface=iface
        )
    parts = (line.partition("=") for line in answer.splitlines())
    return [(k, v) for k, sep, v in parts if sep]
