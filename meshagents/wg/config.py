"""wg-quick configuration files: render and parse (pure, no I/O).

The format is ``wg-quick(8)``'s: ``[Interface]`` and ``[Peer]`` sections of
``Key = value`` lines, keys case-insensitive, ``#`` starting a comment anywhere, list
values comma-separated and repeatable. A peer's device name travels as a
``# Name = <name>`` comment (wg-quick ignores it). Keys we do not model (``PostUp``,
``Table``, ...) are kept in order in ``extra`` so a file survives a round trip.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from meshagents.errors import FnError

HEADER = "# Managed by meshagents (wg_* functions). Manual edits show as drift (wg_status --drift)."


@dataclass(frozen=True)
class InterfaceSection:
    private_key: str | None = None
    addresses: tuple[str, ...] = ()
    listen_port: int | None = None
    dns: tuple[str, ...] = ()
    mtu: int | None = None
    extra: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class PeerSection:
    public_key: str
    allowed_ips: tuple[str, ...] = ()
    name: str | None = None
    preshared_key: str | None = None
    endpoint: str | None = None
    persistent_keepalive: int | None = None
    extra: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class WgQuickConfig:
    interface: InterfaceSection = field(default_factory=InterfaceSection)
    peers: tuple[PeerSection, ...] = ()

    def peer(self, public_key: str) -> PeerSection | None:
        return next((p for p in self.peers if p.public_key == public_key), None)

    def with_peer(self, peer: PeerSection) -> WgQuickConfig:
        """This config with ``peer`` added, or replacing the one with its key (in place)."""
        peers = list(self.peers)
        for i, p in enumerate(peers):
            if p.public_key == peer.public_key:
                peers[i] = peer
                return replace(self, peers=tuple(peers))
        return replace(self, peers=(*peers, peer))

    def without_peer(self, public_key: str) -> WgQuickConfig:
        return replace(self, peers=tuple(p for p in self.peers if p.public_key != public_key))


def render(cfg: WgQuickConfig, header: str | None = HEADER) -> str:
    out: list[str] = []
    if header:
        out.append(header)
    i = cfg.interface
    out.append("[Interface]")
    if i.private_key is not None:
        out.append(f"PrivateKey = {i.private_key}")
    if i.addresses:
        out.append(f"Address = {', '.join(i.addresses)}")
    if i.listen_port is not None:
        out.append(f"ListenPort = {i.listen_port}")
    if i.dns:
        out.append(f"DNS = {', '.join(i.dns)}")
    if i.mtu is not None:
        out.append(f"MTU = {i.mtu}")
    out.extend(f"{k} = {v}" for k, v in i.extra)
    for p in cfg.peers:
        out.append("")
        out.append("[Peer]")
        if p.name is not None:
            out.append(f"# Name = {p.name}")
        out.append(f"PublicKey = {p.public_key}")
        if p.preshared_key is not None:
            out.append(f"PresharedKey = {p.preshared_key}")
        if p.allowed_ips:
            out.append(f"AllowedIPs = {', '.join(p.allowed_ips)}")
        if p.endpoint is not None:
            out.append(f"Endpoint = {p.endpoint}")
        if p.persistent_keepalive is not None:
            out.append(f"PersistentKeepalive = {p.persistent_keepalive}")
        out.extend(f"{k} = {v}" for k, v in p.extra)
    return "\n".join(out) + "\n"


def _split_list(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def _int(value: str, key: str, line_no: int) -> int:
    try:
        return int(value)
    except ValueError as exc:
        raise FnError("config_invalid", f"line {line_no}: {key} must be an integer, got {value!r}") from exc


@dataclass
class _PeerDraft:
    allowed_ips: list[str] = field(default_factory=list)
    extra: list[tuple[str, str]] = field(default_factory=list)
    public_key: str | None = None
    name: str | None = None
    preshared_key: str | None = None
    endpoint: str | None = None
    persistent_keepalive: int | None = None


@dataclass
class _InterfaceDraft:
    addresses: list[str] = field(default_factory=list)
    dns: list[str] = field(default_factory=list)
    extra: list[tuple[str, str]] = field(default_factory=list)
    private_key: str | None = None
    listen_port: int | None = None
    mtu: int | None = None


def _interface_line(d: _InterfaceDraft, key: str, value: str, line_no: int) -> None:
    low = key.lower()
    if low == "privatekey":
        d.private_key = value
    elif low == "address":
        d.addresses.extend(_split_list(value))
    elif low == "listenport":
        d.listen_port = _int(value, key, line_no)
    elif low == "dns":
        d.dns.extend(_split_list(value))
    elif low == "mtu":
        d.mtu = _int(value, key, line_no)
    else:
        d.extra.append((key, value))


def _peer_line(d: _PeerDraft, key: str, value: str, line_no: int) -> None:
    low = key.lower()
    if low == "publickey":
        d.public_key = value
    elif low == "presharedkey":
        d.preshared_key = value
    elif low == "allowedips":
        d.allowed_ips.extend(_split_list(value))
    elif low == "endpoint":
        d.endpoint = value
    elif low == "persistentkeepalive":
        d.persistent_keepalive = None if value == "off" else _int(value, key, line_no)
    else:
        d.extra.append((key, value))


def parse(text: str) -> WgQuickConfig:
    """Parse wg-quick text; FnError ``config_invalid`` names the first bad line."""
    iface = _InterfaceDraft()
    peers: list[_PeerDraft] = []
    section: str | None = None
    seen_interface = False
    for line_no, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if stripped.startswith("#") and section == "peer":
            k, sep, v = stripped[1:].strip().partition("=")
            if sep and k.strip().lower() == "name":
                peers[-1].name = v.strip()
                continue
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("["):
            low = line.lower()
            if low == "[interface]":
                if seen_interface:
                    raise FnError("config_invalid", f"line {line_no}: a second [Interface]")
                section, seen_interface = "interface", True
            elif low == "[peer]":
                section = "peer"
                peers.append(_PeerDraft())
            else:
                raise FnError("config_invalid", f"line {line_no}: unknown section {line}")
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise FnError("config_invalid", f"line {line_no}: expected 'Key = value'")
        if section == "interface":
            _interface_line(iface, key.strip(), value.strip(), line_no)
        elif section == "peer":
            _peer_line(peers[-1], key.strip(), value.strip(), line_no)
        else:
            raise FnError("config_invalid", f"line {line_no}: {key.strip()} outside any section")
    out_peers = []
    for n, p in enumerate(peers, start=1):
        if p.public_key is None:
            raise FnError("config_invalid", f"[Peer] #{n} has no PublicKey")
        out_peers.append(
            PeerSection(
                public_key=p.public_key,
                allowed_ips=tuple(p.allowed_ips),
                name=p.name,
                preshared_key=p.preshared_key,
                endpoint=p.endpoint,
                persistent_keepalive=p.persistent_keepalive,
                extra=tuple(p.extra),
            )
        )
    return WgQuickConfig(
        interface=InterfaceSection(
            private_key=iface.private_key,
            addresses=tuple(iface.addresses),
            listen_port=iface.listen_port,
            dns=tuple(iface.dns),
            mtu=iface.mtu,
            extra=tuple(iface.extra),
        ),
        peers=tuple(out_peers),
    )
