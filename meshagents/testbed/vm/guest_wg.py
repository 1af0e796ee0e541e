"""Runs INSIDE the test VM (shipped with the remote bundle): both WireGuard backends, same steps.

    python -m meshagents.testbed.vm.guest_wg backend kernel|userspace      the backend alone
    python -m meshagents.testbed.vm.guest_wg functions kernel|userspace    hub setup, add, revoke, status
    python -m meshagents.testbed.vm.guest_wg status kernel|userspace N R   wg_status at N peers, R runs

Each prints one JSON object of what it saw (the tests and ``bench/bench_wg.py --vm`` judge
it on the operator's side). Everything happens in a fresh namespace of the guest with a
per-run interface name and is deleted at the end, so the shared VM stays as it was.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from meshagents.errors import FnError
from meshagents.wg.model import DeviceState, PeerSpec


def rand_key() -> str:
    return base64.b64encode(secrets.token_bytes(32)).decode()


def keypair() -> tuple[str, str]:
    priv = subprocess.run(["wg", "genkey"], capture_output=True, text=True, check=True).stdout.strip()
    pub = subprocess.run(["wg", "pubkey"], input=priv, capture_output=True, text=True, check=True)
    return priv, pub.stdout.strip()


@contextmanager
def namespace() -> Iterator[str]:
    ns = f"gw{secrets.token_hex(4)}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        yield ns
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)


def _peers(state: DeviceState) -> dict[str, dict[str, Any]]:
    return {
        p.public_key: {"allowed_ips": sorted(p.allowed_ips), "endpoint": p.endpoint,
                       "keepalive": p.persistent_keepalive, "psk": p.has_preshared_key}
        for p in state.peers
    }  # fmt: skip


def backend_steps(prefer: str) -> dict[str, Any]:
    """create, configure, add 3 peers (endpoint, keepalive, psk), update, remove, replace, delete."""
    from meshagents.wg.backend import open_backend

    out: dict[str, Any] = {}
    with namespace() as ns:
        iface = f"wgx{secrets.token_hex(2)}"
        be = open_backend(iface, ns, prefer)  # type: ignore[arg-type]
        out["backend"] = be.name
        out["created"] = be.create()
        out["created_again"] = be.create()
        priv, pub = keypair()
        be.configure(private_key=priv, listen_port=51820)
        keys = [rand_key() for _ in range(3)]
        psk = rand_key()
        specs = [
            PeerSpec(keys[0], ("10.77.0.10/32",), endpoint="198.51.100.50:51820", persistent_keepalive=25),
            PeerSpec(keys[1], ("10.77.0.11/32", "10.78.0.0/24"), preshared_key=psk),
            PeerSpec(keys[2], ("10.77.0.12/32",)),
        ]
        be.configure(peers=specs)
        st = be.state()
        if be.name == "kernel":  # our raw decoder and pyroute2's decoding of the same real answer
            from meshagents.wg.kernel import KernelBackend, decode_dump, parse_info, raw_message

            assert isinstance(be, KernelBackend)
            wg = be._wg()
            try:
                msgs = list(wg.info(iface))
                out["decoders_agree"] = decode_dump(raw_message(m) for m in msgs) == parse_info(msgs)
            finally:
                wg.close()
        out["public_key_ok"] = st.public_key == pub
        out["listen_port"] = st.listen_port
        out["after_add"] = _peers(st)
        out["keys"] = keys
        be.configure(peers=[PeerSpec(keys[2], ("10.77.0.99/32",))])
        out["after_update"] = _peers(be.state())[keys[2]]["allowed_ips"]
        be.remove_peers([keys[1]])
        out["after_remove"] = sorted(_peers(be.state()))
        be.configure(peers=[specs[0]], replace_peers=True)
        out["after_replace"] = sorted(_peers(be.state()))
        out["deleted"] = be.delete()
        out["exists_after_delete"] = be.exists()
    return out


def function_steps(prefer: str) -> dict[str, Any]:
    """The catalog path a hub takes: wg_hub_setup, wg_peer_add, wg_status, wg_peer_revoke."""
    from meshagents.runtime.api import call

    out: dict[str, Any] = {}
    with namespace() as ns, tempfile.TemporaryDirectory(dir="/var/tmp") as tmp:
        os.environ["FN_STATE_DIR"] = f"{tmp}/state"
        cfg, iface = Path(tmp) / "hub", f"wgf{secrets.token_hex(2)}"
        try:
            hub = call("wg_hub_setup", interface=iface, netns=ns, config_dir=cfg, address="10.79.0.1/24",
                       backend=prefer, listen_port=51821)  # fmt: skip
            out["backend"] = hub["backend"]
            again = call("wg_hub_setup", interface=iface, netns=ns, config_dir=cfg, address="10.79.0.1/24",
                         backend=prefer, listen_port=51821)  # fmt: skip
            out["setup_again_changed"] = again["changed"]
            a, b = rand_key(), rand_key()
            out["add_a"] = call("wg_peer_add", public_key=a, name="dev-a", interface=iface, config_dir=cfg,
                                persistent_keepalive=25)  # fmt: skip
            out["add_b"] = call("wg_peer_add", public_key=b, name="dev-b", interface=iface, config_dir=cfg)
            st = call("wg_status", interface=iface, config_dir=cfg)
            out["status_names"] = sorted(p["name"] for p in st["peers"])
            out["status_count"] = st["peer_count"]
            out["revoke"] = call("wg_peer_revoke", peer="dev-a", interface=iface, config_dir=cfg)
            st = call("wg_status", interface=iface, config_dir=cfg)
            out["after_revoke_names"] = sorted(p["name"] for p in st["peers"])
            try:
                call("wg_peer_add", public_key=a, name="dev-a2", interface=iface, config_dir=cfg)
                out["readd_revoked"] = "accepted"
            except FnError as exc:
                out["readd_revoked"] = exc.code
            out["remove_b"] = call("wg_peer_remove", peer="dev-b", interface=iface, config_dir=cfg)
            out["final_count"] = call("wg_status", interface=iface, config_dir=cfg)["peer_count"]
            out["conf_peers"] = (cfg / f"{iface}.conf").read_text().count("[Peer]")
            live = subprocess.run(["nsenter", f"--net=/run/netns/{ns}", "wg", "show", iface, "peers"],
                                  capture_output=True, text=True, check=False)  # fmt: skip
            out["wg_show_peers"] = live.stdout.split()
        finally:
            with suppress(FnError):
                call("wg_interface_down", interface=iface, config_dir=cfg)
    return out


def _median_ms(samples: list[float]) -> float:
    return round(statistics.median(samples) * 1000, 2)


def _timed(fn: Callable[[], Any], runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def status_bench(prefer: str, count: int, runs: int) -> dict[str, Any]:
    """wg_status at ``count`` peers with names in the ledger, against the backend's raw
    answer (netlink dump or UAPI get) and ``wg show dump``, in the same run."""
    from meshagents.runtime.api import call
    from meshagents.wg.backend import open_backend
    from meshagents.wg.kernel import KernelBackend
    from meshagents.wg.userspace import UserspaceBackend

    with namespace() as ns, tempfile.TemporaryDirectory(dir="/var/tmp") as tmp:
        os.environ["FN_STATE_DIR"] = f"{tmp}/state"
        cfg, iface = Path(tmp) / "hub", f"wgb{secrets.token_hex(2)}"
        try:
            hub = call("wg_hub_setup", interface=iface, netns=ns, config_dir=cfg, address="10.80.0.1/16",
                       backend=prefer, firewall=False)  # fmt: skip
            be = open_backend(iface, ns, prefer)  # type: ignore[arg-type]
            keys = [rand_key() for _ in range(count)]
            t0 = time.perf_counter()
            for start in range(0, count, 250):
                be.configure(peers=[PeerSpec(k, (f"10.81.{(start + i) // 256}.{(start + i) % 256}/32",))
                                    for i, k in enumerate(keys[start:start + 250])])  # fmt: skip
            load_s = time.perf_counter() - t0
            db = sqlite3.connect(cfg / ".meshagents" / f"{iface}.sqlite")
            now = time.time()
            db.executemany(
                "INSERT INTO peers VALUES (?, ?, ?, ?, 'active', 0, ?, ?)",
                [(k, f"bench-{j}", f"10.82.{j // 256}.{j % 256}", 100000 + j, now, now)
                 for j, k in enumerate(keys)],
            )  # fmt: skip
            db.commit()
            db.close()
            seen = call("wg_status", interface=iface, config_dir=cfg)["peer_count"]
            status = _timed(lambda: call("wg_status", interface=iface, config_dir=cfg), runs)
            if isinstance(be, KernelBackend):
                def raw() -> Any:
                    wg = be._wg()
                    try:
                        return list(wg.info(iface))
                    finally:
                        wg.close()
                raw_name = "netlink dump (pyroute2 WireGuard.info)"
            else:
                assert isinstance(be, UserspaceBackend)
                raw = be.uapi.get_raw
                raw_name = "UAPI get"
            raw_s = _timed(raw, runs)
            show = ["nsenter", f"--net=/run/netns/{ns}", "wg", "show", iface, "dump"]
            dump = _timed(lambda: subprocess.run(show, capture_output=True, check=True), runs)
            return {
                "backend": hub["backend"], "peers": seen, "runs": runs, "load_s": round(load_s, 2),
                "wg_status_ms": _median_ms(status), "raw_ms": _median_ms(raw_s), "raw": raw_name,
                "wg_show_dump_ms": _median_ms(dump),
            }  # fmt: skip
        finally:
            with suppress(FnError):
                call("wg_interface_down", interface=iface, config_dir=cfg)


def main(argv: list[str]) -> int:
    what, prefer = argv[0], argv[1]
    if what == "backend":
        out = backend_steps(prefer)
    elif what == "functions":
        out = function_steps(prefer)
    elif what == "status":
        out = status_bench(prefer, int(argv[2]), int(argv[3]))
    else:
        print(f"unknown step {what!r}", file=sys.stderr)
        return 2
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
