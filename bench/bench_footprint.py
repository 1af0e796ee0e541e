"""Device footprint: the ``meshagents[agent]`` install on disk and the installed agent's RSS.

    .venv/bin/python bench/bench_footprint.py [--requests 20] [--no-rss]

Builds the wheel (``python -m build``), installs ``[agent]`` from a copy of it into a fresh
venv under /var/tmp made with Debian's python3 (as a device would), and prints, in the same run:

- disk: the whole venv (``du``), its site-packages, and site-packages without pip and
  setuptools (what the agent brings); the heaviest distributions (sum of their RECORD files);
- baseline: the checkout's own ``.venv`` (``./fn``'s ``[all]``: Synapse, Playwright, mypy, ...),
  which is what a device needed before the wheel;
- RSS: ``bench/bench_agent.py --agent-python <venv>/bin/python`` (an embedded Synapse, the
  installed agent as its own process, idle and while serving), with the bare interpreter's
  RSS (``python -c`` sleeping) as its floor.

The venv is removed at the end.
"""

from __future__ import annotations

import argparse
import json
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SYSTEM_PYTHON = "/usr/bin/python3"
AIM_DISK_MB = 80
AIM_RSS_MB = 60

_SIZES = r"""
import json, os
from importlib.metadata import distributions
out = {}
for d in distributions():
    total = 0
    for f in d.files or []:
        p = d.locate_file(f)
        try:
            total += os.path.getsize(p)
        except OSError:
            pass
    out[d.metadata["Name"]] = total
print(json.dumps(out))
"""


def du_mb(path: Path) -> float:
    out = subprocess.run(["du", "-sk", str(path)], capture_output=True, text=True, check=True).stdout
    return int(out.split()[0]) / 1024


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--requests", type=int, default=20)
    ap.add_argument("--no-rss", action="store_true", help="disk only")
    ns = ap.parse_args()

    target = Path("/var/tmp") / f"bench-footprint-{secrets.token_hex(4)}"
    try:
        with tempfile.TemporaryDirectory() as dist:
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-m", "build", "--wheel", "--outdir", dist, str(ROOT)],
                           check=True, capture_output=True)  # fmt: skip
            wheel = next(Path(dist).glob("meshagents-*.whl"))
            target.mkdir()
            copy = target / wheel.name
            shutil.copy2(wheel, copy)
            built = time.perf_counter() - t0
        venv = target / "venv"
        t0 = time.perf_counter()
        subprocess.run([SYSTEM_PYTHON, "-m", "venv", str(venv)], check=True)
        pip = [str(venv / "bin/pip"), "install", "-q", "--disable-pip-version-check", f"{copy}[agent]"]
        subprocess.run(pip,
                       check=True, cwd=target)  # fmt: skip
        installed = time.perf_counter() - t0
        site = next(venv.glob("lib/python3*/site-packages"))
        sizes = json.loads(subprocess.run([str(venv / "bin/python"), "-c", _SIZES], capture_output=True,
                                          text=True, check=True).stdout)  # fmt: skip
        tooling = sum(sizes.get(n, 0) for n in ("pip", "setuptools")) / 2**20
        total, site_mb = du_mb(venv), du_mb(site)
        print(f"wheel {wheel.name}: {copy.stat().st_size / 1024:.0f} kB, built in {built:.1f} s; "
              f"[agent] installed in {installed:.1f} s, {len(sizes)} distributions")  # fmt: skip
        print(f"disk: venv {total:.1f} MB, site-packages {site_mb:.1f} MB, "
              f"without pip+setuptools {site_mb - tooling:.1f} MB   (aim <= {AIM_DISK_MB} MB)")  # fmt: skip
        print("heaviest distributions (MB on disk):")
        for name, size in sorted(sizes.items(), key=lambda kv: -kv[1])[:14]:
            print(f"  {name:<24} {size / 2**20:6.1f}")
        checkout_venv = ROOT / ".venv"
        if checkout_venv.is_dir():
            print(f"baseline: the checkout's .venv ([all], what ./fn installs) {du_mb(checkout_venv):.0f} MB")
        if ns.no_rss:
            return
        floor = subprocess.Popen([str(venv / "bin/python"), "-c", "import time; time.sleep(30)"])
        time.sleep(1.0)
        print(f"baseline: bare interpreter RSS {rss_mb(floor.pid):.1f} MB")
        floor.kill()
        floor.wait()
        sys.stdout.flush()
        subprocess.run([sys.executable, str(ROOT / "bench/bench_agent.py"), "--no-sandbox-cost",
                        "--requests", str(ns.requests), "--agent-python", str(venv / "bin/python")],
                       check=True, cwd=ROOT)  # fmt: skip
        print(f"(RSS aim for the installed agent idle: <= {AIM_RSS_MB} MB)")
    finally:
        shutil.rmtree(target, ignore_errors=True)


if __name__ == "__main__":
    main()
