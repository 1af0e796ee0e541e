"""A production hub on a fresh Debian 12 VM: provision, re-run, reboot → first answered command,
and ``wg_status`` at 1,000 peers on kernel WireGuard beside wireguard-go, in one run.

    .venv/bin/python bench/bench_hubhost.py [--peers 1000] [--runs 5]     (root; ./fn vm build first)
    .venv/bin/python bench/bench_hubhost.py --kept DIR     a hub kept by MESHAGENTS_VMHUB_KEEP=DIR:
                                                           figure 1 from its first run's log, 2-5 measured

Boots a VM of the cached image (qemu TCG; meshagents/testbed/vm), drives
``pipelines/provision_wg_hub --host`` from an operator namespace on the VM's segment (the set-up
of tests/integration/hubhost/test_vm_hub.py: ``tests.testbed.hubhost``), and prints, each beside
its baseline measured in the same run:

  1. provision from nothing (every step's time from the pipeline's own [n/m] lines)
     against the VM's boot to sshd;
  2. the re-run with the same flags (nothing to do) against one ``fn run --host`` of a
     trivial function (the floor of any remote step);
  3. a device enrolled over ``https://<domain>/enroll`` and its first command through Caddy;
  4. ``reboot`` → the first command answered by that device (the whole chain back by itself:
     kernel WireGuard, firewall, PostgreSQL, Synapse, Caddy, hub, bot, the device's
     re-handshake) and → ``fn hub status`` ok, against the bare reboot → sshd;
  5. ``wg_status`` at N peers on kernel WireGuard and on wireguard-go in the same guest, each
     against its raw answer (netlink dump / UAPI get) and ``wg show dump``.

TCG emulation on a shared 2-core machine makes every figure several times slower than on a
real VPS: compare the rows with their baselines, not the absolutes. The load is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from meshagents.testbed.vm import machine, ship  # noqa: E402
from tests.testbed.hubhost import (  # noqa: E402
    VmHub,
    _load_kept,
    ask,
    close_vm_hub,
    enroll_device,
    open_vm_hub,
    provision_first,
    remove_device,
)


def steps(stderr: str) -> list[tuple[str, float]]:
    out, name = [], ""
    for line in stderr.splitlines():
        m = re.match(r"==> \S+: \[\d+/\d+\] (.*?)( \(on .*\))?$", line)
        if m:
            name = m.group(1)
        m = re.match(r"\s+done in ([0-9.]+)s", line)
        if m and name:
            out.append((name, float(m.group(1))))
    return out


def load() -> str:
    return Path("/proc/loadavg").read_text().split()[0]


def main() -> None:
    ap = argparse.ArgumentParser(prog="bench_hubhost.py")
    ap.add_argument("--peers", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--kept", type=Path, default=None, help="a hub kept by MESHAGENTS_VMHUB_KEEP=DIR")
    args = ap.parse_args()
    tag = secrets.token_hex(3)
    kept: VmHub | None = _load_kept(args.kept) if args.kept else None
    if kept is not None:
        vm, base = kept.vm, None
    else:
        base = Path(tempfile.mkdtemp(prefix="meshagents-vm-", dir="/var/tmp"))  # down --stale finds it
        vm = machine.up(f"vmhub{tag}", base=base, mem_mb=1536, smp=2, owner_pid=os.getpid())
    hub = dev = None
    try:
        print(f"VM boot → sshd (baseline): {vm.boot_seconds:.1f} s (load {load()})", flush=True)
        if kept is not None:
            hub, work = kept, Path(args.kept)
            print(f"1. provision from a fresh VM (the kept hub's first run, {work / 'provision-1.log'}): "
                  f"{hub.provision_s:.1f} s (baseline VM boot {vm.boot_seconds:.1f} s)")  # fmt: skip
        else:
            assert base is not None
            work = base / "work"
            work.mkdir()
            hub = open_vm_hub(vm, tag, work)
            provision_first(hub, work)
            print(f"1. provision from a fresh VM: {hub.provision_s:.1f} s "
                  f"(baseline VM boot {vm.boot_seconds:.1f} s; load {load()})")  # fmt: skip
        for step, secs in steps(hub.first_stderr):
            print(f"     {secs:7.1f} s  {step}")
        t0 = time.monotonic()
        floor = hub.fn("run", "--host", hub.alias, "wg_keygen")
        floor_s = time.monotonic() - t0
        assert floor.returncode == 0, floor.stderr
        t0 = time.monotonic()
        again = hub.provision()
        rerun = time.monotonic() - t0
        assert again.returncode == 0 and "changed:" not in again.stderr, again.stderr[-3000:]
        print(f"2. re-run, nothing to do: {rerun:.1f} s for {len(steps(again.stderr))} steps "
              f"(baseline: one fn run --host {floor_s:.1f} s)", flush=True)  # fmt: skip
        t0 = time.monotonic()
        dev = enroll_device(hub, tag, work)
        enrolled = time.monotonic() - t0
        first = ask(hub, dev.name, "!exec uptime -p")
        print(f"3. device enrolled over https://{hub.domain}/enroll (token, enroll, offline signature "
              f"from the operator's machine): {enrolled:.1f} s; first command answered in "
              f"{first['seconds']:.1f} s (sent → reply)", flush=True)  # fmt: skip
        t0 = time.monotonic()
        sshd = vm.reboot()
        reply = ask(hub, dev.name, "!exec uptime -p", timeout=900, store="after-reboot")
        answered = time.monotonic() - t0
        assert str(reply["body"]).split("\n", 1)[0].endswith("]: ok"), reply
        while hub.fn("hub", "status", "--host", hub.alias).returncode != 0:
            if time.monotonic() - t0 > 900:
                sys.exit("hub status not ok 900 s after the reboot")
            time.sleep(3)
        healthy = time.monotonic() - t0
        print(f"4. reboot → first answered command {answered:.1f} s; → fn hub status ok {healthy:.1f} s "
              f"(baseline reboot → sshd {sshd:.1f} s; load {load()})", flush=True)  # fmt: skip
        guest = ship.ship(vm)
        print(f"5. wg_status at {args.peers} peers in the same guest ({vm.ssh('uname -r').stdout.strip()}), "
              f"median of {args.runs} runs:")  # fmt: skip
        for backend in ("kernel", "userspace"):
            call = f"main(['status', {backend!r}, '{args.peers}', '{args.runs}'])"
            script = f"import sys\nfrom meshagents.testbed.vm.guest_wg import main\nsys.exit({call})\n"
            out = json.loads(guest.python(script, timeout=1800).stdout.strip().splitlines()[-1])
            label = "kernel WireGuard" if backend == "kernel" else "wireguard-go    "
            print(
                f"   {label}  wg_status {out['wg_status_ms']:8.1f} ms   {out['raw']:<40} "
                f"{out['raw_ms']:8.1f} ms   `wg show dump` {out['wg_show_dump_ms']:8.1f} ms   "
                f"(ratio to raw {out['wg_status_ms'] / out['raw_ms']:.2f}x; load {load()})",
                flush=True,
            )
    finally:
        if dev is not None:
            remove_device(dev)
        if kept is None:
            if hub is not None:
                close_vm_hub(hub)
            machine.down(vm.name, base=base)
            if base is not None:
                shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
