"""A production hub on a fresh Debian 12 VM: provision time, re-run time, reboot → healthy.

    .venv/bin/python bench/bench_hubhost.py        (root; ./fn vm build first, or it builds)

Boots a VM of the cached image (qemu TCG, tests/fixtures/vm.py's machinery), drives
``pipelines/provision_wg_hub --host`` from an operator namespace on the VM's segment
(tests/integration/hubhost/conftest.py), and prints, in one run, each beside its baseline:

  1. provision from nothing (every step's time from the pipeline's own [n/m] lines)
     against the VM's boot to sshd;
  2. the re-run with the same flags (nothing to do) against one ``fn run --host`` of a
     trivial function (the floor of any remote step);
  3. ``reboot`` → the whole hub healthy again (``fn hub status`` ok: units, kernel
     WireGuard, Synapse, Caddy's certificate, the bot's Matrix client) against the bare
     reboot → sshd.
"""

from __future__ import annotations

import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from meshagents.testbed.vm import machine  # noqa: E402
from tests.testbed.hubhost import VmHub, _ssh_config_for_segment, prefetch  # noqa: E402


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


def main() -> None:
    tag = secrets.token_hex(3)
    base = Path(tempfile.mkdtemp(prefix="meshagents-benchvm-", dir="/var/tmp"))
    ns = f"hpbn{tag}"
    hosts = Path("/etc/netns") / ns
    vm = machine.up(f"hb{tag}", base=base)
    try:
        print(f"VM boot → sshd (baseline): {vm.boot_seconds:.1f} s")
        subprocess.run(["ip", "netns", "add", ns], check=True)
        vm.attach(ns)
        work = base / "work"
        work.mkdir()
        state = work / "state"
        state.mkdir(mode=0o700)
        cfg = work / "ssh_config"
        _ssh_config_for_segment(vm, cfg)
        domain = f"hub-{tag}.test"
        hosts.mkdir(parents=True, exist_ok=True)
        (hosts / "hosts").write_text(f"127.0.0.1 localhost\n{vm.public_ip} {domain}\n")
        hub = VmHub(vm=vm, ns=ns, domain=domain, state=state, ssh_config=cfg, alias=vm.ssh_alias)
        prefetch(vm)
        t0 = time.monotonic()
        proc = hub.provision()
        took = time.monotonic() - t0
        if proc.returncode != 0:
            sys.exit(f"provision failed:\n{proc.stderr[-4000:]}")
        print(f"1. provision from a fresh VM: {took:.1f} s (baseline VM boot {vm.boot_seconds:.1f} s)")
        for name, secs in steps(proc.stderr):
            print(f"     {secs:7.1f} s  {name}")
        t0 = time.monotonic()
        floor = hub.fn("run", "--host", hub.alias, "wg_keygen")
        floor_s = time.monotonic() - t0
        assert floor.returncode == 0, floor.stderr
        t0 = time.monotonic()
        again = hub.provision()
        rerun = time.monotonic() - t0
        assert again.returncode == 0 and "changed:" not in again.stderr, again.stderr[-3000:]
        print(f"2. re-run, nothing to do: {rerun:.1f} s for {len(steps(again.stderr))} steps "
              f"(baseline: one fn run --host {floor_s:.1f} s)")  # fmt: skip
        sshd = vm.reboot()
        t_boot = time.monotonic()
        while True:
            st = hub.fn("hub", "status", "--host", hub.alias)
            if st.returncode == 0:
                break
            if time.monotonic() - t_boot > 900:
                sys.exit(f"not healthy 900 s after the reboot: {st.stdout[-2000:]}")
            time.sleep(3)
        healthy = sshd + (time.monotonic() - t_boot)
        print(f"3. reboot → whole hub healthy: {healthy:.1f} s (baseline reboot → sshd {sshd:.1f} s)")
    finally:
        machine.down(vm.name, base=base)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        shutil.rmtree(hosts, ignore_errors=True)
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
