"""WireGuard layer: peer add/remove through our backend vs `wg set`, and wg_status at scale.

    .venv/bin/python bench/bench_wg.py            (root; wireguard-go, wireguard-tools)
    .venv/bin/python bench/bench_wg.py --vm [--vm-name N] [--peers 1000] [--runs 5]

Everything runs in a throwaway network namespace with a per-run interface name and
is torn down at the end. Prints, in the same run:
  1. add / remove one peer: our UAPI backend vs `wg set ... peer` as a subprocess
     (the baseline), and the whole wg_peer_add / wg_peer_remove (ledger + config + git)
  2. wg_status (UAPI get + parse + ledger names + online flags) at 1,000 and 10,000
     peers, against the UAPI get alone and `wg show <iface> dump` as a subprocess (the
     baselines), interleaved, four cases each beside its own UAPI get: idle (blocks as
     at the last get and rows as at the last call, reused), first idle after a change
     (blocks reused, rows built once more), changed (no block the same text: only each
     known key's counters matched) and cold (a process's first call: every block fully
     matched); p50, p95, median pair ratio and the load average; then, at 10,000 peers,
     where a call's time goes (get alone, get + parse, whole call; wall and CPU).
     BENCH_WG_RUNS=N (default 15).

``--vm``: wg_status at 1,000 peers on **kernel WireGuard** beside wireguard-go, both in the
test VM (Debian 12, kernel 6.1, qemu TCG; ``./fn vm``), each against its raw answer
(the netlink dump / the UAPI get) and ``wg show dump`` in the same run. Boots a VM and
stops it at the end, or uses a running one with ``--vm-name``. TCG emulation makes every
figure several times slower than on a real VPS: compare the rows, not the absolutes.
"""

from __future__ import annotations

import base64
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from meshagents.runtime.api import call
from meshagents.wg import uapi as uapi_mod
from meshagents.wg.model import PeerSpec
from meshagents.wg.uapi import render_set
from meshagents.wg.userspace import UserspaceBackend


def key() -> str:
    return base64.b64encode(secrets.token_bytes(32)).decode()


def ms(samples: list[float]) -> str:
    s = sorted(samples)
    return f"median {statistics.median(s) * 1000:8.3f} ms   p95 {s[int(len(s) * 0.95) - 1] * 1000:8.3f} ms"


def timed(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def bulk_peers(be: UserspaceBackend, count: int, start: int) -> list[str]:
    """Load ``count`` peers in batches of 500 per UAPI request (not what is measured)."""
    keys = []
    for base in range(start, start + count, 500):
        batch = [
            PeerSpec(key(), (f"10.{42 + i // 65536}.{(i // 256) % 256}.{i % 256}/32",))
            for i in range(base, min(base + 500, start + count))
        ]
        be.uapi.set(render_set(peers=batch))
        keys += [p.public_key for p in batch]
    return keys


RUNS = int(os.environ.get("BENCH_WG_RUNS", "15"))


def where(iface: str, cfg: Path, be: UserspaceBackend, status: Callable[[], None], runs: int) -> None:
    """Where a call's time goes: per stage, wall and this thread's CPU (medians, interleaved)."""
    stages: dict[str, list[float]] = {}

    def stamp(name: str, fn: Callable[[], Any]) -> None:
        c0, t0 = time.thread_time(), time.perf_counter()
        fn()
        stages.setdefault(name, []).append(time.perf_counter() - t0)
        stages.setdefault(name + " cpu", []).append(time.thread_time() - c0)

    for _ in range(runs):
        status()  # idle from here on
        stamp("UAPI get alone", be.uapi.get_raw)
        stamp("idle: get + parse", be.uapi.get)
        stamp("idle: whole wg_status", status)
        uapi_mod._last_blocks = {}
        stamp("changed: get + parse", be.uapi.get)
        uapi_mod._last_blocks = {}
        stamp("changed: whole wg_status", status)
    med = {k: statistics.median(v) * 1000 for k, v in stages.items()}
    print("   where the time goes at 10,000 peers (median wall / this thread's CPU, ms; the daemon builds "
          "its answer before the first byte, our CPU beyond the bare get's is the cost of Python):")
    for k in ("UAPI get alone", "idle: get + parse", "idle: whole wg_status", "changed: get + parse",
              "changed: whole wg_status"):
        print(f"      {k:<26} {med[k]:7.2f} / {med[k + ' cpu']:6.2f}")
    print(f"      -> parse beyond the get: idle {med['idle: get + parse'] - med['UAPI get alone']:.2f} ms, "
          f"changed {med['changed: get + parse'] - med['UAPI get alone']:.2f} ms; rows, names and the call "
          f"beyond that: idle {med['idle: whole wg_status'] - med['idle: get + parse']:.2f} ms, changed "
          f"{med['changed: whole wg_status'] - med['changed: get + parse']:.2f} ms (wall)")


def main() -> None:
    if os.geteuid() != 0:
        sys.exit("bench_wg needs root (network namespaces, wireguard-go)")
    sfx = secrets.token_hex(3)
    ns, iface = f"bw{sfx}", f"bw{sfx}"
    work = Path(tempfile.mkdtemp(prefix=f"bench-wg-{sfx}-"))
    os.environ["FN_STATE_DIR"] = str(work / "state")
    cfg = work / "hub"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        hub = call("wg_hub_setup", interface=iface, netns=ns, config_dir=cfg, address="10.42.0.1/16")
        be = UserspaceBackend(iface, ns)
        print(f"hub {iface} in netns {ns} ({hub['backend']}), config {cfg}\n")

        n = 300
        keys = [key() for _ in range(n)]
        specs = [PeerSpec(k, (f"10.99.{i // 256}.{i % 256}/32",)) for i, k in enumerate(keys)]
        add_uapi = [timed(lambda p=p: be.configure(peers=[p])) for p in specs]
        rm_uapi = [timed(lambda k=k: be.remove_peers([k])) for k in keys]
        add_wg = [timed(lambda k=k, i=i: subprocess.run(
            ["wg", "set", iface, "peer", k, "allowed-ips", f"10.99.{i // 256}.{i % 256}/32"], check=True))
            for i, k in enumerate(keys)]  # fmt: skip
        rm_wg = [
            timed(lambda k=k: subprocess.run(["wg", "set", iface, "peer", k, "remove"], check=True))
            for k in keys
        ]
        print(f"1. one peer, {n} times each (same interface, same run)")
        print(f"   add    our UAPI backend       {ms(add_uapi)}")
        print(f"   add    `wg set` subprocess    {ms(add_wg)}")
        print(f"   remove our UAPI backend       {ms(rm_uapi)}")
        print(f"   remove `wg set` subprocess    {ms(rm_wg)}")
        speed_add = statistics.median(add_wg) / statistics.median(add_uapi)
        speed_rm = statistics.median(rm_wg) / statistics.median(rm_uapi)
        print(f"   -> backend is {speed_add:.0f}x faster to add, {speed_rm:.0f}x faster to remove")
        m = 50
        fkeys = [key() for _ in range(m)]
        f_add = [
            timed(lambda k=k: call("wg_peer_add", public_key=k, interface=iface, config_dir=cfg))
            for k in fkeys
        ]
        f_rm = [
            timed(lambda k=k: call("wg_peer_remove", peer=k, interface=iface, config_dir=cfg)) for k in fkeys
        ]
        print(f"   whole wg_peer_add    (ledger + live + config + git commit) {ms(f_add)}")
        print(f"   whole wg_peer_remove (live + ledger + config + git commit) {ms(f_rm)}\n")

        print("2. wg_status (UAPI get, parse, ledger names, online flags) vs `wg show dump`")
        loaded = 0
        ledger_db = cfg / ".meshagents" / f"{iface}.sqlite"
        for target in (1_000, 10_000):
            new = bulk_peers(be, target - loaded, loaded + 256)
            # names for them in the ledger, as wg_peer_add would have written (bulk, not measured)
            import sqlite3

            db = sqlite3.connect(ledger_db)
            now = time.time()
            db.executemany(
                "INSERT INTO peers VALUES (?, ?, ?, ?, 'active', 0, ?, ?)",
                [(k, f"bench-{loaded + j}", f"10.200.{(loaded + j) // 256}.{(loaded + j) % 256}",
                  100000 + loaded + j, now, now) for j, k in enumerate(new)],
            )  # fmt: skip
            db.commit()
            db.close()
            loaded = target
            runs = RUNS
            st_samples: list[float] = []
            dump: list[float] = []
            raw: list[float] = []
            out: dict[str, Any] = {}
            show = ["wg", "show", iface, "dump"]
            call("wg_status", interface=iface, config_dir=cfg)  # the first reads the new ledger rows
            changed: list[float] = []
            cold: list[float] = []
            loads: list[float] = []

            def status() -> None:
                call("wg_status", interface=iface, config_dir=cfg)

            after_change: list[float] = []
            for _ in range(runs):  # interleaved: subject and baselines see the same machine load
                loads.append(float(Path("/proc/loadavg").read_text().split()[0]))
                # the first idle call after the cold one below (or the first run): its blocks
                # are reused, its rows built once more (no row of the last call to copy)
                after_change.append(timed(status))
                raw.append(timed(be.uapi.get_raw))
                out = {}  # the last answer is freed here, not inside the next timed call
                t0 = time.perf_counter()
                out = call("wg_status", interface=iface, config_dir=cfg)
                st_samples.append(time.perf_counter() - t0)
                out_count = out["peer_count"]
                out = {}
                raw.append(timed(be.uapi.get_raw))
                dump.append(timed(lambda s=show: subprocess.run(s, check=True, capture_output=True)))
                # as if every peer's handshake and counters had moved since the last get: no
                # block is the same text as then (keys, endpoints and allowed IPs are)
                uapi_mod._last_blocks = {}
                changed.append(timed(status))
                raw.append(timed(be.uapi.get_raw))
                # as if every peer were new to this process (its first wg_status)
                uapi_mod._last_blocks, uapi_mod._by_key = {}, {}
                cold.append(timed(status))
                raw.append(timed(be.uapi.get_raw))
            assert out_count == target, out_count
            after_raw, warm_raw, changed_raw, cold_raw = raw[0::4], raw[1::4], raw[2::4], raw[3::4]
            print(f"   {target:>6} peers  wg_status          {ms(st_samples)}  (idle: blocks and rows as at "
                  "the last call)")
            print(f"   {target:>6} peers  wg_status, 1st idle {ms(after_change)}  (idle after a change: "
                  "rows built once more)")
            print(f"   {target:>6} peers  wg_status, changed {ms(changed)}  (every peer's counters moved)")
            print(f"   {target:>6} peers  wg_status, cold    {ms(cold)}  (first call: every block parsed)")
            print(f"   {target:>6} peers  `wg show dump`     {ms(dump)}")
            print(f"   {target:>6} peers  (UAPI get alone)   {ms(raw)}  (connect, get=1, read to errno; "
                  f"each case beside its own)")
            load = f"load {min(loads):.2f}-{max(loads):.2f}"
            for label, xs, base in (("idle   ", st_samples, warm_raw), ("1st idl", after_change, after_raw),
                                    ("changed", changed, changed_raw), ("cold   ", cold, cold_raw)):
                pairs = statistics.median(a / b for a, b in zip(xs, base, strict=True))
                p95 = sorted(xs)[int(len(xs) * 0.95) - 1] / sorted(base)[int(len(base) * 0.95) - 1]
                print(f"   {target:>6} peers  wg_status {label} / UAPI get = {pairs:.2f}x median pair, "
                      f"p50 {statistics.median(xs) / statistics.median(base):.2f}x, p95 {p95:.2f}x"
                      f"  (aim <= 1.3x; {load})")
            if target == 10_000:
                where(iface, cfg, be, status, runs)
    finally:
        subprocess.run(["nsenter", f"--net=/run/netns/{ns}", "ip", "link", "del", iface], capture_output=True)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        subprocess.run(["rm", "-rf", str(work)], check=False)


def main_vm(argv: list[str]) -> None:
    import argparse
    import json

    from meshagents.testbed.vm import machine, ship

    ap = argparse.ArgumentParser(prog="bench_wg.py --vm")
    ap.add_argument("--vm", action="store_true")
    ap.add_argument("--vm-name", default=None, help="a VM already up (./fn vm up --name N)")
    ap.add_argument("--peers", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=5)
    ns = ap.parse_args(argv)
    own = ns.vm_name is None
    name = ns.vm_name or f"bw{secrets.token_hex(3)}"
    base = Path(tempfile.mkdtemp(prefix="bench-wg-vm-", dir="/var/tmp")) if own else None
    try:
        vm = machine.up(name, base=base) if own else machine.Vm.load(name)
        guest = ship.ship(vm)
        print(f"VM {name}: {vm.ssh('uname -r').stdout.strip()}, qemu TCG, {ns.peers} peers, "
              f"median of {ns.runs} runs (same guest, same run)")
        for backend in ("kernel", "userspace"):
            script = ("import sys\nfrom meshagents.testbed.vm.guest_wg import main\n"
                      f"sys.exit(main(['status', {backend!r}, '{ns.peers}', '{ns.runs}']))\n")  # fmt: skip
            out = json.loads(guest.python(script, timeout=1800).stdout.strip().splitlines()[-1])
            label = "kernel WireGuard" if backend == "kernel" else "wireguard-go    "
            print(f"   {label}  wg_status {out['wg_status_ms']:9.1f} ms   {out['raw']:<40} "
                  f"{out['raw_ms']:8.1f} ms   `wg show dump` {out['wg_show_dump_ms']:8.1f} ms   "
                  f"(ratio to raw {out['wg_status_ms'] / out['raw_ms']:.2f}x; loading the peers took "
                  f"{out['load_s']:.1f} s)")
    finally:
        if own:
            machine.down(name, base=base)
            if base is not None:
                subprocess.run(["rm", "-rf", str(base)], check=False)


if __name__ == "__main__":
    if "--vm" in sys.argv[1:]:
        main_vm(sys.argv[1:])
    else:
        main()
