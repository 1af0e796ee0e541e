"""The WireGuard cross-platform UAPI (wireguard-go, boringtun): a pure core and a socket shell.

The protocol is text over ``/var/run/wireguard/<iface>.sock``: ``get=1\\n\\n`` answers
``key=value`` lines ending ``errno=0\\n\\n``; ``set=1\\n`` plus lines plus ``\\n`` changes
the device. Keys are hex here and base64 everywhere else; this module converts.
The socket directory is machine-wide, whatever the network namespace.
"""

from __future__ import annotations

import binascii
import codecs
import re
import socket
from collections.abc import Callable, Iterable
from pathlib import Path

from meshagents.errors import FnError
from meshagents.wg.keys import b64_to_hex, hex_to_b64, public_from_private
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
    """The ``errno=N`` that ends every answer (only the tail is looked at: answers can be MBs)."""
    last = text[-64:].strip().rpartition("\n")[2]
    if last.startswith("errno="):
        return int(last[6:])
    raise FnError("wg_uapi_error", "UAPI answer without errno")


# wireguard-go writes each peer's lines in one fixed order (device/uapi.go, IpcGetOperation).
# One regex over the whole answer parses that layout in C; an answer in any other layout
# (another implementation, a field added) falls back to the line parser below, so the fast
# path is an optimisation, never a second meaning.
_BLOCK = (
    r"public_key=([0-9a-f]{64})\n"
    r"preshared_key=([0-9a-f]{64})\n"
    r"protocol_version=\d+\n"
    r"(?:endpoint=([^\n]+)\n)?"
    r"last_handshake_time_sec=(\d+)\n"
    r"last_handshake_time_nsec=(\d+)\n"
    r"tx_bytes=(\d+)\n"
    r"rx_bytes=(\d+)\n"
    r"persistent_keepalive_interval=(\d+)\n"
    r"((?:allowed_ip=[^\n]*\n)*)"
)
#: One peer's block after its ``public_key=`` (the answer split at each of those).
_PEER_PIECE = re.compile(_BLOCK.removeprefix("public_key="))
#: The part of a block that moves while a peer talks: handshake time and counters, from
#: after ``last_handshake_time_sec=`` to the newline that ends ``rx_bytes=``.
_COUNTERS = re.compile(r"(\d+)\nlast_handshake_time_nsec=(\d+)\ntx_bytes=(\d+)\nrx_bytes=(\d+)\n")
_NO_PSK = "0" * 64
_PREFIX = "public_key="

#: The peers of the last answer parsed, by the exact text of their block: a PeerState is
#: a pure function of that text (and immutable), so a block unchanged since the last
#: ``get`` (an idle peer: same handshake, same counters) is not parsed again. Replaced
#: whole by each parse, so it holds one answer's peers at most.
_last_blocks: dict[str, PeerState] = {}
#: Per public key (hex), the last block seen for it cut around its counters: (the text
#: before the handshake time, the text after ``rx_bytes=``, its PeerState). A block that
#: starts and ends with exactly that text (a peer whose handshake or counters moved, the
#: common change on a busy hub) is that block with other counters: only those are matched
#: and converted. Pruned to the live keys when it outgrows the last answer twice over.
_by_key: dict[str, tuple[str, str, PeerState]] = {}


def _peer_of(groups: tuple[str, ...]) -> PeerState:
    pub, psk, endpoint, sec, nsec, tx, rx, ka, ips = groups
    s = int(sec)
    # PeerState's own __new__ is a Python function: tuple.__new__ builds the same tuple
    return tuple.__new__(
        PeerState,
        (
            binascii.b2a_base64(bytes.fromhex(pub), newline=False).decode(),
            tuple(ips[11:-1].split("\nallowed_ip=")) if ips else (),
            endpoint or None,
            (s + int(nsec) / 1e9) if s else None,
            int(rx),
            int(tx),
            int(ka) or None,
            psk != _NO_PSK,
        ),
    )


def _parse_piece(piece: str) -> PeerState | None:
    """One block not seen in the last answer, or None when it is not wireguard-go's layout."""
    known = _by_key.get(piece[:64])
    if known is not None:
        head, tail, old = known
        a, b = len(head), len(piece) - len(tail)
        if a <= b and piece.startswith(head) and piece.endswith(tail):
            m = _COUNTERS.fullmatch(piece, a, b)
            if m is not None:  # head + these counters + tail: a block of the layout
                sec, nsec, tx, rx = m.groups()
                s = int(sec)
                return tuple.__new__(
                    PeerState,
                    (old[0], old[1], old[2], (s + int(nsec) / 1e9) if s else None, int(rx), int(tx),
                     old[6], old[7]),
                )  # fmt: skip
    full = _PEER_PIECE.fullmatch(piece)
    if full is None:
        return None
    peer = _peer_of(full.groups())
    _by_key[full.group(1)] = (piece[: full.start(4)], piece[full.end(7) + 1 :], peer)
    return peer


def _parse_peers_fast(text: str) -> list[PeerState] | None:
    """The peers of a wireguard-go answer, or None when its layout is not exactly that one.

    The answer is split at each ``public_key=`` (in C); every piece must be exactly one
    block of the fixed layout (a full match: an unknown line, a missing one or a stray
    ``public_key=`` inside a value leaves a piece that does not match, and the caller
    falls back to the line parser). A piece seen in the last answer is looked up, not
    matched (all of them in one ``map``, in C); a piece whose key was seen has only its
    counters matched when the rest of it is the same text as then.
    """
    start = text.find(_PREFIX)
    if start < 0:
        return []
    end = text.rfind("errno=")
    pieces = text[start + len(_PREFIX) : end if end >= start else len(text)].split(_PREFIX)
    return _complete(pieces, list(map(_last_blocks.get, pieces)))


def _complete(pieces: list[str], out: list[PeerState | None]) -> list[PeerState] | None:
    """The peers of ``pieces``, given the ones already looked up in the last answer's
    blocks (None where not found); None when a piece is not wireguard-go's layout."""
    global _last_blocks, _by_key
    if None in out:
        for i, piece in enumerate(pieces):
            if out[i] is None:
                peer = _parse_piece(piece)
                if peer is None:
                    return None
                out[i] = peer
    elif len(_last_blocks) == len(pieces):
        return out  # type: ignore[return-value]  # no None left: every piece was looked up
    _last_blocks = dict(zip(pieces, out, strict=True))  # type: ignore[arg-type]
    if len(_by_key) > 2 * len(pieces) + 64:
        live = {piece[:64] for piece in pieces}
        _by_key = {k: v for k, v in _by_key.items() if k in live}
    return out  # type: ignore[return-value]


class AnswerStream:
    """A ``get`` answer parsed as it arrives: each chunk's complete blocks are split off
    and looked up among the last answer's at once.

    wireguard-go writes its ~3 MB answer at 10,000 peers in socket-buffer sized pieces
    (~219 KB) and waits for each to be read: the look-ups of one chunk run while it
    writes the next, instead of all after the last. Gives exactly what :func:`parse_get`
    gives for the whole text (the pieces are the same strings, split at the same
    ``public_key=``; any other layout goes to the same fallback).
    """

    def __init__(self) -> None:
        self.parts: list[str] = []
        self._decoder = codecs.getincrementaldecoder("utf-8")()
        self._head: str | None = None
        self._rest = ""  # from the last ``public_key=`` seen: its block may go on
        self._pieces: list[str] = []
        self._found: list[PeerState | None] = []

    def feed(self, data: bytes) -> None:
        text = self._decoder.decode(data)
        self.parts.append(text)
        buf = self._rest + text
        if self._head is None:
            first = buf.find(_PREFIX)
            if first < 0:
                self._rest = buf
                return
            self._head, buf = buf[:first], buf[first:]
        cut = buf.rfind(_PREFIX)
        if cut > 0:
            pieces = buf[len(_PREFIX) : cut].split(_PREFIX)
            self._pieces += pieces
            self._found += map(_last_blocks.get, pieces)
            buf = buf[cut:]
        self._rest = buf

    def text(self) -> str:
        return "".join(self.parts) + self._decoder.decode(b"", final=True)

    def result(self) -> tuple[str | None, DeviceState]:
        """The parse of everything fed (the answer's ``errno`` checked by the caller)."""
        if self._head is None:  # no peer at all
            return parse_get(self.text())
        rest = self._rest
        end = rest.rfind("errno=")
        last = rest[len(_PREFIX) : end if end >= 0 else len(rest)]
        pieces, found = [*self._pieces, last], [*self._found, _last_blocks.get(last)]
        peers = _complete(pieces, found)
        if peers is None:
            return _parse_get_lines(self.text())
        return _device_of(self._head, peers)


def parse_get(text: str) -> tuple[str | None, DeviceState]:
    """(private key base64 or None, device state) from a ``get`` answer.

    Written for 10,000 peers: wireguard-go's layout is parsed by one regex (C speed);
    any other layout by one pass over the lines (wg_status must stay cheap next to the
    daemon's own answer).
    """
    head_end = text.find("public_key=")
    head = text if head_end < 0 else text[:head_end]
    fast = _parse_peers_fast(text)
    if fast is not None:
        return _device_of(head, fast)
    return _parse_get_lines(text)


def _device_of(head: str, peers: list[PeerState]) -> tuple[str | None, DeviceState]:
    private: str | None = None
    port: int | None = None
    for line in head.split("\n"):
        key, _, value = line.partition("=")
        if key == "private_key":
            private = hex_to_b64(value)
        elif key == "listen_port":
            port = int(value)
    public = _public_of(private) if private else None
    return private, DeviceState(public_key=public, listen_port=port, peers=tuple(peers))


def _parse_get_lines(text: str) -> tuple[str | None, DeviceState]:
    """The general parser: any field order, unknown fields ignored."""
    private: str | None = None
    port: int | None = None
    peers: list[PeerState] = []
    cur: dict[str, str] | None = None
    ips: list[str] = []
    append = peers.append

    def flush(c: dict[str, str], ips: list[str]) -> None:
        sec = int(c.get("last_handshake_time_sec", "0"))
        ka = int(c.get("persistent_keepalive_interval", "0"))
        psk = c.get("preshared_key", "")
        append(
            PeerState(
                hex_to_b64(c["public_key"]),
                tuple(ips),
                c.get("endpoint"),
                (sec + int(c.get("last_handshake_time_nsec", "0")) / 1e9) if sec else None,
                int(c.get("rx_bytes", "0")),
                int(c.get("tx_bytes", "0")),
                ka or None,
                bool(psk) and psk.strip("0") != "",
            )
        )

    for line in text.split("\n"):
        key, _, value = line.partition("=")
        if key == "allowed_ip":
            ips.append(value)
        elif key == "public_key":
            if cur is not None:
                flush(cur, ips)
            cur = {"public_key": value}
            ips = []
        elif cur is not None:
            if value:
                cur[key] = value
        elif key == "private_key":
            private = hex_to_b64(value)
        elif key == "listen_port":
            port = int(value)
    if cur is not None:
        flush(cur, ips)
    public = _public_of(private) if private else None
    return private, DeviceState(public_key=public, listen_port=port, peers=tuple(peers))


def _public_of(private_b64: str) -> str:
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

    def answers(self) -> bool:
        """The daemon accepts a connection (no request: cheap even with 10,000 peers)."""
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(self.timeout)
                s.connect(str(self.path))
        except OSError:
            return False
        return True

    def _send(self, text: str) -> socket.socket:
        """A connection with ``text`` sent on it (the daemon starts answering at once)."""
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.settimeout(self.timeout)
            s.connect(str(self.path))
            s.sendall(text.encode())
        except FileNotFoundError as exc:
            s.close()
            raise FnError("wg_interface_missing", f"no WireGuard UAPI socket {self.path}") from exc
        except OSError as exc:
            s.close()
            raise FnError("wg_uapi_error", f"UAPI {self.path}: {exc}") from exc
        return s

    def _answer(self, s: socket.socket) -> str:
        """Read the answer to the request sent on ``s`` (to its ``errno=N`` line), then close."""
        chunks: list[bytes] = []
        self._read(s, chunks.append)
        return b"".join(chunks).decode()

    def _read(self, s: socket.socket, feed: Callable[[bytes], object]) -> bytes:
        """Hand each chunk of the answer on ``s`` to ``feed`` until its ``errno=N`` line, then
        close ``s``; the answer's last bytes (where that line is)."""
        tail = b""
        try:
            with s:
                while True:
                    data = s.recv(1 << 20)
                    if not data:
                        break
                    feed(data)
                    tail = (tail + data)[-64:]
                    # the answer ends with "errno=N\n\n"; do not wait for EOF
                    if tail.endswith(b"\n\n") and b"errno=" in tail:
                        break
        except OSError as exc:
            raise FnError("wg_uapi_error", f"UAPI {self.path}: {exc}") from exc
        return tail

    def _request(self, text: str) -> str:
        return self._answer(self._send(text))

    def get_raw(self) -> str:
        return self._request("get=1\n\n")

    def get(self) -> tuple[str | None, DeviceState]:
        """The device, parsed while the answer streams in (:class:`AnswerStream`)."""
        stream = AnswerStream()
        tail = self._read(self._send("get=1\n\n"), stream.feed)
        err = parse_errno(tail.decode(errors="replace"))
        if err != 0:
            raise FnError("wg_uapi_error", f"UAPI get failed with errno {err}")
        return stream.result()

    def set(self, request: str) -> None:
        err = parse_errno(self._request(request))
        if err != 0:
            raise FnError("wg_uapi_error", f"UAPI set failed with errno {err}", errno=err)

    def is_stale(self) -> bool:
        """The socket file exists but nobody listens on it any more (its daemon was killed)."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            try:
                s.connect(str(self.path))
            except ConnectionRefusedError:
                return True
            except OSError:
                return False
        return False
