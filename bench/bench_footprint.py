"""Device footprint: the ``meshagents[agent]`` install on disk and the installed agent's RSS.

    .venv/bin/python bench/bench_footprint.py [--requests 20] [--no-rss] [--baseline-ref main]

Builds the wheel (``python -m build``), installs ``[agent]`` from a copy of it into a fresh
venv under /var/tmp made with Debian's python3 (as a device would: ``python3 -m venv``, so
the venv also holds pip and setuptools), and prints, in the same run:

- disk (``du``: allocated blocks, ``.pyc`` included): the whole venv; site-packages; without
  setuptools (nothing at run time needs it, and pip installs wheels without it); without
  pip and setuptools (what the agent itself brings; ``meshagents agent upgrade`` runs the
  venv's pip, so a device keeps pip); the ten heaviest distributions (their RECORD files,
  which list the ``.pyc`` pip compiled, plus their ``__pycache__`` directories);
- RSS of ``import X`` alone in the installed venv (cwd /) for the stacks that weigh, and
  for the agent's whole import, beside the bare interpreter's RSS (its floor);
- RSS of the installed agent serving: ``bench/bench_agent.py --agent-python <venv>/bin/python``
  (an embedded Synapse, the agent as its own process, idle and while serving);
- baselines: the checkout's own ``.venv`` (``./fn``'s ``[all]``), what a device needed before
  the wheel; and with ``--baseline-ref REF`` the same disk and import figures for the wheel
  built from that git ref (``git archive``), so a change is measured against its parent in
  one run under the same load.

With ``--baseline-ref`` the serving run is made for both, baseline first.
``--trace-imports`` adds, for the agent's import, the RSS each top-level package adds by
its own module bodies (an import hook, nested imports subtracted). The venvs are removed.
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
TOOLING = ("pip", "setuptools")
# what `import X` alone costs; the last is everything the agent's process imports at start
IMPORTS = ["nio", "aiohttp", "httpx", "pydantic", "pyroute2", "Crypto.Cipher.AES", "cryptography.hazmat",
           "meshagents.apps.device_agent.agent"]  # fmt: skip

# run inside the installed venv: allocated bytes per distribution
_SIZES = r"""
import json, os
from importlib.metadata import distributions
out = {}
for d in distributions():
    seen, total = set(), 0
    paths = [d.locate_file(f) for f in d.files or []]
    for p in list(paths):  # each recorded .py's own .pyc (pip records them too; be sure)
        c, stem = os.path.join(os.path.dirname(p), "__pycache__"), os.path.basename(str(p))[:-3]
        if str(p).endswith(".py") and os.path.isdir(c):
            paths += [os.path.join(c, n) for n in os.listdir(c) if n.startswith(stem + ".")]
    for p in paths:
        p = os.path.realpath(p)
        if p in seen:
            continue
        seen.add(p)
        try:
            total += os.lstat(p).st_blocks * 512
        except OSError:
            pass
    out[d.metadata["Name"].lower()] = total
print(json.dumps(out))
"""

_RSS_OF_IMPORT = r"""
import importlib, sys
if sys.argv[1]:
    importlib.import_module(sys.argv[1])
with open("/proc/self/status") as fh:
    print(next(int(l.split()[1]) for l in fh if l.startswith("VmRSS:")) / 1024)
"""

# an import hook: RSS added by each module's own body (nested imports subtracted), per top package
_TRACE = r"""
import collections, importlib, importlib.abc, sys
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20
stack, own = [], collections.Counter()
class Loader(importlib.abc.Loader):
    def __init__(self, inner): self.inner = inner
    def __getattr__(self, name): return getattr(self.inner, name)
    def create_module(self, spec): return self.inner.create_module(spec)
    def exec_module(self, mod):
        r0 = rss(); stack.append(0.0)
        try:
            self.inner.exec_module(mod)
        finally:
            nested, grown = stack.pop(), rss() - r0
            own[mod.__name__.split(".")[0]] += grown - nested
            if stack:
                stack[-1] += grown
class Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        for f in sys.meta_path:
            spec = None if f is self or not hasattr(f, "find_spec") else f.find_spec(name, path, target)
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = Loader(spec.loader)
                return spec
        return None
sys.meta_path.insert(0, Finder())
importlib.import_module(sys.argv[1])
for name, mb in own.most_common(15):
    print(f"{name}\t{mb:.1f}")
"""


def du_mb(*paths: Path) -> float:
    present = [str(p) for p in paths if p.exists()]
    if not present:
        return 0.0
    out = subprocess.run(["du", "-skc", *present], capture_output=True, text=True, check=True).stdout
    return int(out.splitlines()[-1].split()[0]) / 1024


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def build_and_install(source: Path, target: Path) -> tuple[Path, str]:
    """The wheel built from ``source``, installed with [agent] into ``target/venv``."""
    with tempfile.TemporaryDirectory() as dist:
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "build", "--wheel", "--outdir", dist, str(source)],
                       check=True, capture_output=True)  # fmt: skip
        wheel = next(Path(dist).glob("meshagents-*.whl"))
        target.mkdir()
        copy = target / wheel.name
        shutil.copy2(wheel, copy)
        built = time.perf_counter() - t0
    venv = target / "venv"
    t0 = time.perf_counter()
    subprocess.run([SYSTEM_PYTHON, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin/pip"), "install", "-q", "--disable-pip-version-check", f"{copy}[agent]"],
                   check=True, cwd=target, capture_output=True)  # fmt: skip
    note = (f"wheel {wheel.name} {copy.stat().st_size / 1024:.0f} kB, built in {built:.1f} s; "
            f"[agent] installed in {time.perf_counter() - t0:.1f} s")  # fmt: skip
    return venv, note


def disk(venv: Path) -> dict[str, float | dict[str, float]]:
    site = next(venv.glob("lib/python3*/site-packages"))
    sizes = json.loads(subprocess.run([str(venv / "bin/python"), "-c", _SIZES], capture_output=True,
                                      text=True, check=True, cwd="/").stdout)  # fmt: skip
    setuptools = du_mb(*(site / n for n in ("setuptools", "pkg_resources", "_distutils_hack",
                                            "distutils-precedence.pth")),
                       *site.glob("setuptools-*.dist-info"))  # fmt: skip
    pip = du_mb(site / "pip", *site.glob("pip-*.dist-info"))
    site_mb = du_mb(site)
    return {
        "venv": du_mb(venv),
        "site": site_mb,
        "no_setuptools": site_mb - setuptools,
        "no_tooling": site_mb - setuptools - pip,
        "pip": pip,
        "setuptools": setuptools,
        "dists": {k: v / 2**20 for k, v in sizes.items()},
    }


def import_rss(venv: Path, module: str) -> float | None:
    res = subprocess.run([str(venv / "bin/python"), "-c", _RSS_OF_IMPORT, module],
                         capture_output=True, text=True, cwd="/")  # fmt: skip
    return float(res.stdout) if res.returncode == 0 else None


def report(label: str, venv: Path, note: str, trace: bool) -> dict[str, float | dict[str, float]]:
    d = disk(venv)
    dists = d["dists"]
    assert isinstance(dists, dict)
    print(f"== {label}: {note}, {len(dists)} distributions")
    print(f"disk: venv {d['venv']:.1f} MB; site-packages {d['site']:.1f} MB "
          f"(pip {d['pip']:.1f}, setuptools {d['setuptools']:.1f}); "
          f"without setuptools {d['no_setuptools']:.1f} MB; "
          f"without pip and setuptools {d['no_tooling']:.1f} MB   (aim <= {AIM_DISK_MB} MB)")  # fmt: skip
    print("  heaviest distributions, MB on disk (files and .pyc):")
    for name, size in sorted(dists.items(), key=lambda kv: -kv[1])[:10]:
        print(f"    {name:<24} {size:6.1f}")
    floor = import_rss(venv, "")
    print(f"  RSS of `import X` alone (cwd /), bare interpreter {floor:.1f} MB:")
    for mod in IMPORTS:
        got = import_rss(venv, mod)
        print(f"    {mod:<38} " + (f"{got:6.1f} MB" if got is not None else "  not installed"))
        if got is not None:
            d[f"rss:{mod}"] = got
    if trace:
        out = subprocess.run([str(venv / "bin/python"), "-c", _TRACE, IMPORTS[-1]], capture_output=True,
                             text=True, check=True, cwd="/").stdout  # fmt: skip
        print(f"  RSS each package's own modules add to `import {IMPORTS[-1]}` (MB):")
        for line in out.splitlines():
            name, mb = line.split("\t")
            print(f"    {name:<24} {float(mb):6.1f}")
    sys.stdout.flush()
    return d


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--requests", type=int, default=20)
    ap.add_argument("--no-rss", action="store_true", help="disk and import RSS only, no serving agent")
    ap.add_argument("--baseline-ref", help="also measure the wheel built from this git ref (e.g. main)")
    ap.add_argument("--trace-imports", action="store_true", help="RSS per package of the agent's import")
    ns = ap.parse_args()

    base = Path("/var/tmp") / f"bench-footprint-{secrets.token_hex(4)}"
    base.mkdir()
    try:
        checkout_venv = ROOT / ".venv"
        if checkout_venv.is_dir():
            print(f"baseline: the checkout's .venv ([all], what ./fn installs) {du_mb(checkout_venv):.0f} MB")
        base_venv: Path | None = None
        if ns.baseline_ref:
            src = base / "baseline-src"
            src.mkdir()
            rev = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", ns.baseline_ref],
                                 capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
            archive = subprocess.run(["git", "-C", str(ROOT), "archive", ns.baseline_ref],
                                     capture_output=True, check=True).stdout  # fmt: skip
            subprocess.run(["tar", "-x", "-C", str(src)], input=archive, check=True)
            base_venv, note = build_and_install(src, base / "baseline")
            before = report(f"baseline: {ns.baseline_ref} ({rev})", base_venv, note, ns.trace_imports)
        venv, note = build_and_install(ROOT, base / "ours")
        ours = report("this tree", venv, note, ns.trace_imports)
        if ns.baseline_ref:
            keys = ["venv", "no_setuptools", "no_tooling", f"rss:{IMPORTS[-1]}"]
            print(f"change against {ns.baseline_ref}: " + ", ".join(
                f"{k} {float(before[k]):.1f} -> {float(ours[k]):.1f} MB" for k in keys
                if k in before and k in ours))  # fmt: skip
        if ns.no_rss:
            return
        floor = subprocess.Popen([str(venv / "bin/python"), "-c", "import time; time.sleep(30)"])
        time.sleep(1.0)
        print(f"baseline: bare interpreter RSS {rss_mb(floor.pid):.1f} MB")
        floor.kill()
        floor.wait()
        sys.stdout.flush()
        runs = [(f"baseline: {ns.baseline_ref}", base_venv)] if base_venv is not None else []
        for label, python in [*runs, ("this tree", venv)]:
            print(f"== serving, {label}: bench/bench_agent.py --agent-python {python}/bin/python", flush=True)
            subprocess.run([sys.executable, str(ROOT / "bench/bench_agent.py"), "--no-sandbox-cost",
                            "--requests", str(ns.requests), "--agent-python", str(python / "bin/python")],
                           check=True, cwd=ROOT)  # fmt: skip
        print(f"(RSS aim for the installed agent idle: <= {AIM_RSS_MB} MB)")
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
