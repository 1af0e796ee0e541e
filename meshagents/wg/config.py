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


#: The keys we model, in the order :func:`render` writes them: (wg-quick key, field, kind). One table
#: for both directions; kind: "str" a value, "int" an integer, "list" comma-separated and repeatable,
#: "keepalive" an integer or ``off``. Any other key is kept in ``extra``.
Keys = tuple[tuple[str, str, str], ...]

INTERFACE_KEYS: Keys = (("PrivateKey", "private_key", "str"), ("Address", "addresses", "list"),
                        ("ListenPort", "listen_port", "int"), ("DNS", "dns", "list"),
                        ("MTU", "mtu", "int"))  # fmt: skip
PEER_KEYS: Keys = (("PublicKey", "public_key", "str"), ("PresharedKey", "preshared_key", "str"),
                   ("AllowedIPs", "allowed_ips", "list"), ("Endpoint", "endpoint", "str"),
                   ("PersistentKeepalive", "persistent_keepalive", "keepalive"))  # fmt: skip


def _render_section(section: InterfaceSection | PeerSection, keys: Keys) -> list[str]:
    out: list[str] = []
    for key, attr, kind in keys:
        value = getattr(section, attr)
        if kind == "list":
            if value:
                out.append(f"{key} = {', '.join(value)}")
        elif value is not None:
            out.append(f"{key} = {value}")
    out.extend(f"{k} = {v}" for k, v in section.extra)
    return out


def render(cfg: WgQuickConfig, header: str | None = HEADER) -> str:
    out: list[str] = []
    if header:
        out.append(header)
    out.append("[Interface]")
    out.extend(_render_section(cfg.interface, INTERFACE_KEYS))
    for p in cfg.peers:
        out.append("")
        out.append("[Peer]")
        if p.name is not None:
            out.append(f"# Name = {p.name}")
        out.extend(_render_section(p, PEER_KEYS))
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


def _section_line(
    d: _InterfaceDraft | _PeerDraft, keys: Keys, key: str, value: str, line_no: int
) -> None:
    low = key.lower()
    for name, attr, kind in keys:
        if low != name.lower():
            continue
        if kind == "list":
            getattr(d, attr).extend(_split_list(value))
        elif kind == "int" or (kind == "keepalive" and value != "off"):
            setattr(d, attr, _int(value, key, line_no))
        elif kind == "keepalive":
            setattr(d, attr, None)
        else:
            setattr(d, attr, value)
        return
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
            _section_line(iface, INTERFACE_KEYS, key.strip(), value.strip(), line_no)
        elif section == "peer":
            _section_line(peers[-1], PEER_KEYS, key.strip(), value.strip(), line_no)
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
