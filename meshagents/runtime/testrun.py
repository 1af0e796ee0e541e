"""How ``fn test`` runs pytest: the whole suite in two lanes, or every test alone (--each).

Lanes: the tests that boot a Debian VM under qemu (marker ``vm``) spend most of their time
waiting on a software-emulated guest (tens of minutes in all), while the rest of the suite
needs the CPU in short bursts. Run one after the other they add up; so when ``fn test`` is
asked for the whole suite it starts the VM tests as pytests beside the main one — the hub
provisioned on its own VM (marker ``vm_hub``) in a lane of its own, the other VM tests in
another — with the same random seed, and exits non-zero if any lane failed. A VM lane's
output goes to a log file that is printed whole when it ends, so it never interleaves.

A selection (paths, ``-m``, ``-k``, ``--lf``) runs as one plain pytest: what the user asked
for, nothing more.
"""

from __future__ import annotations

import importlib.util
import os
import re
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

PYTEST = [sys.executable, "-m", "pytest"]
VM_MARK = "vm"
# the VM tests in two lanes: the whole hub provisioned on a VM of its own (~40 min under TCG)
# beside the other VM tests (the device VM, the kernel backend: ~25 min), so neither waits
VM_LANES = (("VM", f"{VM_MARK} and not vm_hub"), ("VM hub", "vm_hub"))
MAIN_LANE = f"not {VM_MARK}"
# options that select tests: with any of them the user chose, and one pytest runs it
_SELECTING = ("-m", "-k", "--lf", "--last-failed", "--ff", "--sw", "--stepwise", "--deselect")
# pytest exit statuses (pytest.ExitCode; not imported: the runtime does not need pytest)
OK, NO_TESTS = 0, 5


def wants_lanes(args: Sequence[str], tests_root: Path) -> bool:
    """True when ``args`` ask for the whole suite: no path but the tests root, no selection."""
    for arg in args:
        if arg.split("=", 1)[0] in _SELECTING or re.fullmatch(r"-[a-zA-Z]*[mk]", arg):
            return False
    return all(Path(p).resolve() == tests_root.resolve() for p in _paths(args))


def _paths(args: Sequence[str]) -> list[str]:
    """The test paths among pytest's arguments (an option's value is no path)."""
    return [a for a in args if not a.startswith("-") and (Path(a).exists() or "::" in a)]


def _with_seed(args: list[str]) -> list[str]:
    """Give both lanes one seed, so the header's seed replays either of them."""
    if any(a.startswith("--randomly-seed") for a in args) or "no:randomly" in args:
        return args
    if importlib.util.find_spec("pytest_randomly") is None:
        return args
    return [*args, f"--randomly-seed={secrets.randbelow(2**32)}"]


def combine(*rcs: int) -> int:
    """The suite's exit status from the lanes': a lane with nothing to run is not a failure
    unless nothing ran at all."""
    ran = [rc for rc in rcs if rc != NO_TESTS]
    if not ran:
        return NO_TESTS
    return next((rc for rc in ran if rc != OK), OK)


def run_lanes(args: list[str], tests_root: Path, echo: Callable[[str], None]) -> int:
    """The main lane in the foreground, the VM lanes beside it; the combined exit status."""
    args = _with_seed(args)
    paths = args if _paths(args) else [*args, str(tests_root)]
    t0 = time.perf_counter()
    side: list[tuple[str, Path, subprocess.Popen[bytes]]] = []
    try:
        for name, expr in VM_LANES:
            prefix = f"meshagents-test-{name.replace(' ', '-')}-lane-"
            fd, log_name = tempfile.mkstemp(prefix=prefix, suffix=".log")
            with os.fdopen(fd, "w") as out:
                proc = subprocess.Popen([*PYTEST, "-m", expr, *paths], stdout=out, stderr=subprocess.STDOUT)
            side.append((name, Path(log_name), proc))
            echo(f"fn test: the {name} lane (-m {expr!r}) runs beside this one; its output: {log_name}")
        main_rc = subprocess.run([*PYTEST, "-m", MAIN_LANE, *paths]).returncode
        if any(p.poll() is None for _, _, p in side):
            echo(f"fn test: main lane done (exit {main_rc}); waiting for the VM lanes")
        rcs = [p.wait() for _, _, p in side]
    finally:
        for _, _, p in side:  # interrupted: never leave a VM lane behind
            if p.poll() is None:
                p.terminate()
                p.wait()
    for (name, log, _), rc in zip(side, rcs, strict=True):
        echo(f"\n===== the {name} lane, exit {rc} =====")
        echo(log.read_text(errors="replace"))
        log.unlink(missing_ok=True)
    rc = combine(main_rc, *rcs)
    lanes = ", ".join(f"{name} lane exit {r}" for (name, _, _), r in zip(side, rcs, strict=True))
    echo(f"fn test: main lane exit {main_rc}, {lanes}, suite exit {rc}, in {time.perf_counter() - t0:.0f} s")
    return rc


def run_each(args: list[str], jobs: int, echo: Callable[[str], None]) -> int:
    """``--each``: every collected test in a pytest of its own; 0 when each passed alone."""
    first_opt = next((i for i, a in enumerate(args) if a.startswith("-")), len(args))
    files, opts = args[:first_opt], args[first_opt:]
    # file order, not a random one, and the user's .pytest_cache (last failed, last seed) left alone
    quiet = ["-p", "no:randomly", "-p", "no:cacheprovider"]
    # one node id a line: that is what "-q" prints, so the user's own -q/-v stay out of it
    selecting = [o for o in opts if o not in ("--quiet", "--verbose") and not re.fullmatch(r"-[qv]+", o)]
    collect = subprocess.run(
        [*PYTEST, "--collect-only", "-q", *quiet, *files, *selecting], capture_output=True, text=True
    )
    ids = [ln for ln in collect.stdout.splitlines() if "::" in ln and not ln.startswith((" ", "<"))]
    if collect.returncode != 0 or not ids:
        echo(collect.stdout + collect.stderr)
        echo(f"fn test --each: collecting {' '.join(files)} failed (pytest exit {collect.returncode})")
        return 1
    echo(f"fn test --each: {len(ids)} test(s) from {len(files)} path(s), each alone, {jobs} at once")
    lock = threading.Lock()
    failed: list[str] = []
    t_all = time.perf_counter()

    def run_one(node: str) -> None:
        t0 = time.perf_counter()
        cmd = [*PYTEST, "-p", "no:cacheprovider", node, *opts]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        dt = time.perf_counter() - t0
        with lock:
            if proc.returncode == 0:
                echo(f"PASS {node} ({dt:.1f} s)")
            else:
                failed.append(node)
                echo(proc.stdout + proc.stderr)
                echo(f"FAIL {node} ({dt:.1f} s, pytest exit {proc.returncode})")

    with ThreadPoolExecutor(jobs) as pool:
        list(pool.map(run_one, ids))
    total = time.perf_counter() - t_all
    echo(f"fn test --each: {len(ids) - len(failed)} passed alone, {len(failed)} failed, in {total:.0f} s")
    for node in sorted(failed):
        echo(f"  failed alone: {node}")
    return 1 if failed else 0
