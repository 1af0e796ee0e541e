"""Enrollment as a command: token -> first handshake and /healthz over the mesh (issue 19 item 4, aim <= 2 s).

    .venv/bin/python bench/bench_enroll.py [--trials 5]        (root; wireguard-go, nftables)

Builds the hub rig (tests/testbed/hub_rig.py: the real wg_hub service in a namespace,
device namespaces) and enrolls fresh devices, alternating, in the same run:

  old   the four-process pipeline this project had: ``./fn run device_key_init``,
        ``./fn run enrollment_submit``, ``./fn run wg_client_install``,
        ``./fn run hub_mesh_check`` — four Python start-ups, each importing the catalog;
  new   ``./fn enroll --no-systemd`` — one process (pre-checks included: the hub's
        clock, a bubblewrap probe, write and disk probes), from start to exit.

Also printed: the in-process part of ``new`` (its own ``timings_ms``, per step) and the
cost of one bare start-up here (``./fn --version``), so the saving is explained.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.testbed.hub_rig import DeviceNs, HubRig, hub_rig_cm, nsenter

ROOT = Path(__file__).resolve().parent.parent
FN = str(ROOT / "fn")


def stats(samples: list[float]) -> str:
    s = sorted(samples)
    p95 = s[max(0, round(len(s) * 0.95) - 1)]
    return f"median {statistics.median(s) * 1000:8.1f} ms   p95 {p95 * 1000:8.1f} ms   (n={len(s)})"


def run(rig: HubRig, dev: DeviceNs, *argv: str) -> str:
    proc = subprocess.run(
        [*nsenter(dev.netns), FN, *argv],
        cwd=ROOT,
        env=rig.env(dev.state),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv[:2])} failed: {proc.stderr[-800:]}")
    return proc.stdout


def old_pipeline(rig: HubRig, dev: DeviceNs) -> float:
    token = rig.token(dev.name)
    t0 = time.perf_counter()
    run(rig, dev, "run", "device_key_init")
    out = json.loads(run(rig, dev, "run", "enrollment_submit", "--token", token, "--hub-url", rig.public_url))
    run(
        rig,
        dev,
        "run",
        "wg_client_install",
        "--config-file",
        out["client_config"],
        "--private-key-file",
        out["wg_private_key_file"],
        "--interface",
        dev.interface,
        "--config-dir",
        str(dev.config_dir),
        "--no-systemd",
    )
    run(
        rig,
        dev,
        "run",
        "hub_mesh_check",
        "--url",
        out["healthz_url"],
        "--interface",
        dev.interface,
        "--config-dir",
        str(dev.config_dir),
    )
    return time.perf_counter() - t0


def new_command(rig: HubRig, dev: DeviceNs) -> tuple[float, dict[str, float]]:
    token = rig.token(dev.name)
    t0 = time.perf_counter()
    out = json.loads(
        run(
            rig,
            dev,
            "enroll",
            "--token",
            token,
            "--hub",
            rig.public_url,
            "--interface",
            dev.interface,
            "--config-dir",
            str(dev.config_dir),
            "--no-systemd",
            "--quiet",
        )
    )
    return time.perf_counter() - t0, dict(out["timings_ms"])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=5)
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench_enroll needs root (network namespaces, wireguard-go)")
    work = Path(tempfile.mkdtemp(prefix="bench-enroll-", dir="/var/tmp"))
    state = work / "hub-state"
    state.mkdir(mode=0o700)
    with hub_rig_cm(work, state) as rig:
        startup = []
        for _ in range(args.trials):
            t0 = time.perf_counter()
            subprocess.run([FN, "--version"], cwd=ROOT, capture_output=True, check=True)
            startup.append(time.perf_counter() - t0)
        old, new, steps = [], [], []
        for _ in range(args.trials):  # alternating, so both see the same machine
            old.append(old_pipeline(rig, rig.new_device()))
            took, timings = new_command(rig, rig.new_device())
            new.append(took)
            steps.append(timings)
        print(f"enrollment, token -> first handshake and /healthz over the mesh ({args.trials} devices each)")
        print(f"   {'old: 4 x ./fn run (device_key_init, submit, install, mesh check)':<66} {stats(old)}")
        print(f"   {'new: ./fn enroll --no-systemd (one process, pre-checks included)':<66} {stats(new)}")
        ratio = statistics.median(new) / statistics.median(old)
        verdict = "ok" if statistics.median(new) <= 2.0 else "MISSED"
        print(f"   new / old at the median: {ratio:.2f}; aim <= 2 s: {verdict}")
        print(f"   {'one bare start-up here (./fn --version)':<66} {stats(startup)}")
        print(f"   machine load: {Path('/proc/loadavg').read_text().strip()}")
        print("   inside the new process, per step (median ms):")
        for key in (
            "precheck",
            "device_key",
            "submit",
            "wireguard",
            "mesh",
            "agent_config",
            "service",
            "total",
        ):
            vals = [s[key] for s in steps if key in s]
            if vals:
                print(f"      {key:<14} {statistics.median(vals):8.1f}")


if __name__ == "__main__":
    main()
