"""The kernel backend: the WireGuard module through pyroute2 (link + generic netlink).

Cannot run on machines without the module (this project's CI): the requests it sends
are built by the pure functions below and unit-tested as netlink messages. In a named
namespace the netlink sockets are opened inside it (pyroute2 ``netns=``).
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Sequence
from typing import Any

from meshagents.errors import FnError
from meshagents.wg import links
from meshagents.wg.model import DeviceState, PeerSpec, PeerState

# --- pure core: pyroute2 ``WireGuard.set(peer=...)`` requests and ``info()`` parsing ---------


def peer_request(spec: PeerSpec) -> dict[str, Any]:
    """A pyroute2 peer dict that adds or updates ``spec``, replacing its allowed IPs."""
    req: dict[str, Any] = {
        "public_key": spec.public_key,
        "replace_allowed_ips": True,
        "allowed_ips": list(spec.allowed_ips),
    }
    if spec.preshared_key is not None:
        req["preshared_key"] = spec.preshared_key
    if spec.persistent_keepalive is not None:
        req["persistent_keepalive"] = spec.persistent_keepalive
    if spec.endpoint is not None:
        host, _, port = spec.endpoint.rpartition(":")
        req["endpoint_addr"] = host.strip("[]")
        req["endpoint_port"] = int(port)
    return req


def remove_request(public_key: str) -> dict[str, Any]:
    return {"public_key": public_key, "remove": True}


def _attr(msg: Any, name: str) -> Any:
    return msg.get_attr(name)


def _key_text(value: Any) -> str:
    raw = value["value"] if isinstance(value, dict) or hasattr(value, "get") else value
    return raw.decode() if isinstance(raw, bytes) else str(raw)


def parse_info(messages: Iterable[Any]) -> DeviceState:
    """A DeviceState from decoded ``wgmsg`` answers (a big device spans several messages)."""
    public: str | None = None
    port: int | None = None
    peers: dict[str, dict[str, Any]] = {}
    for msg in messages:
        pk = _attr(msg, "WGDEVICE_A_PUBLIC_KEY")
        if pk is not None:
            public = _key_text(pk)
        lp = _attr(msg, "WGDEVICE_A_LISTEN_PORT")
        if lp is not None:
            port = int(lp)
        for peer in _attr(msg, "WGDEVICE_A_PEERS") or []:
            key = _key_text(peer.get_attr("WGPEER_A_PUBLIC_KEY"))
            cur = peers.setdefault(key, {"ips": []})
            ep = peer.get_attr("WGPEER_A_ENDPOINT")
            if ep is not None and ep.get("addr") and ep.get("port"):
                addr = ep["addr"]
                cur["endpoint"] = f"[{addr}]:{ep['port']}" if ":" in addr else f"{addr}:{ep['port']}"
            hs = peer.get_attr("WGPEER_A_LAST_HANDSHAKE_TIME")
            if hs is not None and hs.get("tv_sec"):
                cur["hs"] = hs["tv_sec"] + hs.get("tv_nsec", 0) / 1e9
            for name, field in (("WGPEER_A_RX_BYTES", "rx"), ("WGPEER_A_TX_BYTES", "tx")):
                v = peer.get_attr(name)
                if v is not None:
                    cur[field] = int(v)
            ka = peer.get_attr("WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL")
            if ka:
                cur["ka"] = int(ka)
            psk = peer.get_attr("WGPEER_A_PRESHARED_KEY")
            if psk is not None:
                cur["psk"] = base64.b64decode(_key_text(psk)) != bytes(32)
            for ip in peer.get_attr("WGPEER_A_ALLOWEDIPS") or []:
                if ip.get("addr"):
                    cur["ips"].append(ip["addr"])
    return DeviceState(
        public_key=public,
        listen_port=port,
        peers=tuple(
            PeerState(
                public_key=k,
                allowed_ips=tuple(v["ips"]),
                endpoint=v.get("endpoint"),
                last_handshake=v.get("hs"),
                rx_bytes=v.get("rx", 0),
                tx_bytes=v.get("tx", 0),
                persistent_keepalive=v.get("ka"),
                has_preshared_key=bool(v.get("psk")),
            )
            for k, v in peers.items()
        ),
    )


# --- netlink shell ------------------------------------------------------------------------------


class KernelBackend:
    name = "kernel"

    def __init__(self, interface: str, netns: str | None = None) -> None:
        self.interface = interface
        self.netns = netns

    def _wg(self) -> Any:
        from pyroute2 import WireGuard

        try:
            return WireGuard(netns=self.netns) if self.netns else WireGuard()
        except Exception as exc:
            raise FnError("wg_kernel_unavailable", f"no WireGuard kernel module: {exc}") from exc

    def exists(self) -> bool:
        with links.iproute(self.netns) as ipr:
            found = ipr.link_lookup(ifname=self.interface)
            if not found:
                return False
            kind = ipr.get_links(found[0])[0].get_nested("IFLA_LINKINFO", "IFLA_INFO_KIND")
            return bool(kind == "wireguard")

    def create(self) -> bool:
        if self.exists():
            return False
        with links.iproute(self.netns) as ipr:
            try:
                ipr.link("add", ifname=self.interface, kind="wireguard")
            except Exception as exc:
                raise FnError(
                    "wg_start_failed", f"ip link add {self.interface} type wireguard: {exc}"
                ) from exc
        return True

    def delete(self) -> bool:
        return links.delete_link(self.interface, self.netns)

    def configure(
        self,
        *,
        private_key: str | None = None,
        listen_port: int | None = None,
        peers: Sequence[PeerSpec] = (),
        replace_peers: bool = False,
    ) -> None:
        wg = self._wg()
        try:
            if replace_peers:
                current = {p.public_key for p in self.state().peers} - {p.public_key for p in peers}
                for key in current:
                    wg.set(self.interface, peer=remove_request(key))
            if private_key is not None or listen_port is not None:
                wg.set(self.interface, private_key=private_key, listen_port=listen_port)
            for spec in peers:
                wg.set(self.interface, peer=peer_request(spec))
        except FnError:
            raise
        except Exception as exc:
            raise FnError("wg_netlink_error", f"WireGuard netlink set on {self.interface}: {exc}") from exc
        finally:
            wg.close()

    def remove_peers(self, public_keys: Sequence[str]) -> None:
        wg = self._wg()
        try:
            for key in public_keys:
                wg.set(self.interface, peer=remove_request(key))
        except Exception as exc:
            raise FnError("wg_netlink_error", f"WireGuard netlink remove on {self.interface}: {exc}") from exc
        finally:
            wg.close()

    def state(self) -> DeviceState:
        wg = self._wg()
        try:
            return parse_info(wg.info(self.interface))
        except Exception as exc:
            raise FnError("wg_netlink_error", f"WireGuard netlink get on {self.interface}: {exc}") from exc
        finally:
            wg.close()
