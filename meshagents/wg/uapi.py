"""The WireGuard cross-platform UAPI (wireguard-go, boringtun): a pure core and a socket shell.

The protocol is text over ``/var/run/wireguard/<iface>.sock``: ``get=1\\n\\n`` answers
``key=value`` lines ending ``errno=0\\n\\n``; ``set=1\\n`` plus lines plus ``\\n`` changes
the device. Keys are hex here and base64 everywhere else; this module converts.
The socket directory is machine-wide, whatever the network namespace.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable
from pathlib import Path

from meshagents.errors import FnError
from meshagents.wg.keys import b64_to_hex, hex_to_b64
from meshagents.wg.model import DeviceState, PeerSpec, PeerState

SOCKET_DIR = Path("/var/run/wireguard")


# --- pure core ---------------------------------------------------------------------------------


def render_set(
    *,
    private_key: str | None = None,
    listen_port: int | None = None,
    replace_peers: bool = False,
    peers: Iterable[PeerSpec] = (),
    remove: Iterable[str] = (),
) -> str:
    """The text of one ``set`` request (keys given in base64)."""
    lines = ["set=1"]
    if private_key is not None:
        lines.append(f"private_key={b64_to_hex(private_key)}")
    if listen_port is not None:
        lines.append(f"listen_port={listen_port}")
    if replace_peers:
        lines.append("replace_peers=true")
    for pub in remove:
        lines.append(f"public_key={b64_to_hex(pub)}")
        lines.append("remove=true")
    for p in peers:
        lines.append(f"public_key={b64_to_hex(p.public_key)}")
        if p.preshared_key is not None:
            lines.append(f"preshared_key={b64_to_hex(p.preshared_key)}")
        if p.endpoint is not None:
            lines.append(f"endpoint={p.endpoint}")
        if p.persistent_keepalive is not None:
            lines.append(f"persistent_keepalive_interval={p.persistent_keepalive}")
        lines.append("replace_allowed_ips=true")
        lines.extend(f"allowed_ip={ip}" for ip in p.allowed_ips)
    return "\n".join(lines) + "\n\n"


def parse_errno(text: str) -> int:
    for line in reversed(text.strip().splitlines()):
        if line.startswith("errno="):
            return int(line[6:])
    raise FnError("wg_uapi_error", "UAPI answer without errno")


def parse_get(text: str) -> tuple[str | None, DeviceState]:
    """(private key base64 or None, device state) from a ``get`` answer."""
    private: str | None = None
    port: int | None = None
    peers: list[PeerState] = []
    cur: dict[str, object] | None = None
    ips: list[str] = []

    def flush() -> None:
        if cur is None:
            return
        sec = int(str(cur.get("hs_sec", 0)))
        nsec = int(str(cur.get("hs_nsec", 0)))
        ka = int(str(cur.get("ka", 0)))
        peers.append(
            PeerState(
                public_key=str(cur["pub"]),
                allowed_ips=tuple(ips),
                endpoint=str(cur["ep"]) if "ep" in cur else None,
                last_handshake=(sec + nsec / 1e9) if sec else None,
                rx_bytes=int(str(cur.get("rx", 0))),
                tx_bytes=int(str(cur.get("tx", 0))),
                persistent_keepalive=ka or None,
                has_preshared_key=bool(cur.get("psk")),
            )
        )

    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if not sep:
            continue
        if key == "public_key":
            flush()
            cur = {"pub": hex_to_b64(value)}
            ips = []
        elif cur is None:
            if key == "private_key":
                private = hex_to_b64(value)
            elif key == "listen_port":
                port = int(value)
        elif key == "allowed_ip":
            ips.append(value)
        elif key == "endpoint":
            cur["ep"] = value
        elif key == "last_handshake_time_sec":
            cur["hs_sec"] = value
        elif key == "last_handshake_time_nsec":
            cur["hs_nsec"] = value
        elif key == "rx_bytes":
            cur["rx"] = value
        elif key == "tx_bytes":
            cur["tx"] = value
        elif key == "persistent_keepalive_interval":
            cur["ka"] = value
        elif key == "preshared_key":
            cur["psk"] = value.strip("0") != ""
    flush()
    public = _public_of(private) if private else None
    return private, DeviceState(public_key=public, listen_port=port, peers=tuple(peers))


def _public_of(private_b64: str) -> str:
    from functions.wg.wg_keygen import public_from_private

    return public_from_private(private_b64)


# --- socket shell --------------------------------------------------------------------------------


class UapiClient:
    """One UAPI socket; each request opens its own connection (wireguard-go closes after one)."""

    def __init__(self, interface: str, socket_dir: Path = SOCKET_DIR, timeout: float = 10.0) -> None:
        self.interface = interface
        self.path = socket_dir / f"{interface}.sock"
        self.timeout = timeout

    def exists(self) -> bool:
        return self.path.is_socket()

    def _request(self, text: str) -> str:
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(self.timeout)
                s.connect(str(self.path))
                s.sendall(text.encode())
                chunks: list[bytes] = []
                tail = b""
                while True:
                    data = s.recv(1 << 20)
                    if not data:
                        break
                    chunks.append(data)
                    tail = (tail + data)[-64:]
                    # the answer ends with "errno=N\n\n"; do not wait for EOF
                    if tail.endswith(b"\n\n") and b"errno=" in tail:
                        break
        except FileNotFoundError as exc:
            raise FnError("wg_interface_missing", f"no WireGuard UAPI socket {self.path}") from exc
        except OSError as exc:
            raise FnError("wg_uapi_error", f"UAPI {self.path}: {exc}") from exc
        return b"".join(chunks).decode()

    def get_raw(self) -> str:
        return self._request("get=1\n\n")

    def get(self) -> tuple[str | None, DeviceState]:
        answer = self.get_raw()
        err = parse_errno(answer)
        if err != 0:
            raise FnError("wg_uapi_error", f"UAPI get failed with errno {err}")
        return parse_get(answer)

    def set(self, request: str) -> None:
        err = parse_errno(self._request(request))
        if err != 0:
            raise FnError("wg_uapi_error", f"UAPI set failed with errno {err}", errno=err)
