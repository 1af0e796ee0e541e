"""``./fn e2e [APP]``: run the ``e2e_checks`` the apps declare, one row per check in ``e2e_runs``.

    checks = load_checks(root, app=None)          # [Check(app, id, test)] from meshagents/apps/*/app.md
    results = run_checks(root, checks)            # ONE pytest run (a session rig is shared),
                                                  # junit XML -> one CheckResult per check
    record(results)                               # each app's operations.db, table e2e_runs

A check's ``test`` is a pytest node id (``tests/e2e/test_acceptance.py::test_golden_exec_ls``)
or a whole file; a check passes when every test case it names passed (a skipped case is not
a pass). The checks run in one pytest process so the e2e rig (session-scoped) starts once.

Rows go through the app's own store where it has one (wg_hub's ``HubStore.e2e_run``, the
bot's ``DispatchStore.start/finish_e2e_run``); the other apps (device_agent,
agents_dashboard) get ``<state>/<app>/operations.db`` with just an ``e2e_runs`` table of
the hub's shape (check_id, started_at, duration_ms, ok, detail).
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from meshagents.errors import FnError
from meshagents.runtime.appspec import app_dirs, load_app
from meshagents.state import state_dir


@dataclass(frozen=True)
class Check:
    app: str
    id: str
    test: str  # pytest node id or file


@dataclass(frozen=True)
class CheckResult:
    check: Check
    ok: bool
    duration_ms: float
    started_at: float
    detail: str


def load_checks(root: Path, app: str | None = None) -> list[Check]:
    """Every declared check (of ``app`` only when given), in app.md order."""
    dirs = app_dirs(root)
    if app is not None:
        dirs = [d for d in dirs if d.name == app]
        if not dirs:
            raise FnError("app_not_found", f"no app {app!r} with an app.md under meshagents/apps/")
    out: list[Check] = []
    for d in dirs:
        for entry in load_app(d).e2e_checks:
            if not isinstance(entry, dict) or not entry.get("id") or not entry.get("test"):
                raise FnError("app_spec_invalid", f"{d.name}: each e2e_checks entry needs id and test")
            out.append(Check(d.name, str(entry["id"]), str(entry["test"])))
    return out


def _case_node(case: ET.Element) -> tuple[str, str]:
    """(file path, test name) of a junit testcase (classname ``tests.e2e.test_x``)."""
    classname = case.get("classname", "")
    name = case.get("name", "")
    parts = classname.split(".")
    # a test class adds one more part: tests.e2e.test_x.TestY
    for cut in range(len(parts), 0, -1):
        candidate = "/".join(parts[:cut]) + ".py"
        if Path(candidate).name.startswith("test_") or cut == 1:
            return candidate, "::".join([*parts[cut:], name])
    return classname, name


def _matches(test: str, file: str, name: str) -> bool:
    want_file, _, want_name = test.partition("::")
    if want_file != file:
        return False
    if not want_name:
        return True
    base = name.split("[", 1)[0]  # parametrised cases belong to their function
    return want_name in (name, base)


def summarise(checks: list[Check], report: Path, started_at: float) -> list[CheckResult]:
    """Fold a junit XML report into one result per check (pure apart from reading the file)."""
    tree = ET.parse(report)  # noqa: S314 - pytest's own report
    cases = list(tree.iter("testcase"))
    out: list[CheckResult] = []
    for check in checks:
        mine = [c for c in cases if _matches(check.test, *_case_node(c))]
        failed: list[str] = []
        for c in mine:
            bad = c.find("failure") if c.find("failure") is not None else c.find("error")
            if bad is not None:
                failed.append(f"{c.get('name')}: {(bad.get('message') or '')[:300]}")
            elif c.find("skipped") is not None:
                failed.append(f"{c.get('name')}: skipped {(c.find('skipped').get('message') or '')[:200]}")  # type: ignore[union-attr]
        seconds = sum(float(c.get("time") or 0) for c in mine)
        if not mine:
            detail, ok = "no test case ran (wrong node id?)", False
        else:
            ok = not failed
            detail = "; ".join(failed) if failed else f"{len(mine)} passed"
        out.append(CheckResult(check, ok, seconds * 1000, started_at, detail))
    return out


def _file_order(root: Path, test: str) -> tuple[str, int | None]:
    """(file, position of the test's def in it; None when not there): pytest runs the node
    ids in the order given, and the e2e files put their destructive tests last."""
    file, _, name = test.partition("::")
    try:
        text = (root / file).read_text(encoding="utf-8")
    except OSError:
        return file, None
    if not name:
        return file, -1
    pos = text.find(f"def {name.split('::')[-1].split('[', 1)[0]}(")
    return file, pos if pos >= 0 else None


def summarise_missing(checks: list[Check]) -> list[CheckResult]:
    now = time.time()
    return [CheckResult(c, False, 0.0, now, "no test case ran (wrong node id?)") for c in checks]


def run_checks(root: Path, checks: list[Check], extra: tuple[str, ...] = ()) -> list[CheckResult]:
    if not checks:
        return []
    # a node id pytest cannot find aborts the whole run: leave such checks out (they fail
    # as "no test case ran") so the others still run
    known = [t for t in dict.fromkeys(c.test for c in checks) if _file_order(root, t)[1] is not None]
    tests = sorted(known, key=lambda t: (_file_order(root, t)[0], _file_order(root, t)[1] or 0))
    if not tests:
        return summarise_missing(checks)
    with tempfile.TemporaryDirectory(prefix="fn-e2e-") as tmp:
        report = Path(tmp) / "junit.xml"
        started = time.time()
        argv = [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            f"--junitxml={report}",
            *extra,
            *tests,
        ]
        subprocess.run(argv, cwd=root, check=False)
        if not report.exists():
            raise FnError("e2e_no_report", "pytest wrote no report (collection error?)")
        return summarise(checks, report, started)


def _generic_db(app: str) -> Path:
    path = state_dir() / app / "operations.db"
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def record(results: list[CheckResult]) -> None:
    """One row per check in its app's ``e2e_runs``."""
    for r in results:
        app = r.check.app
        if app == "wg_hub":
            from meshagents.apps.wg_hub.store import HubStore

            HubStore(state_dir() / "wg_hub" / "operations.db").e2e_run(
                r.check.id, r.ok, r.duration_ms, r.detail
            )
        elif app == "agents_and_robots":
            from meshagents.apps.agents_and_robots.dispatches import DispatchStore

            with DispatchStore.open() as store:
                run = store.start_e2e_run(r.check.id, now=r.started_at)
                store.finish_e2e_run(
                    run, success=r.ok, now=r.started_at + r.duration_ms / 1000, detail=r.detail
                )
        else:
            db = sqlite3.connect(_generic_db(app), timeout=30)
            try:
                with db:
                    db.execute(
                        "CREATE TABLE IF NOT EXISTS e2e_runs (id INTEGER PRIMARY KEY AUTOINCREMENT, "
                        "check_id TEXT NOT NULL, started_at REAL NOT NULL, duration_ms REAL NOT NULL, "
                        "ok INTEGER NOT NULL, detail TEXT NOT NULL DEFAULT '')"
                    )
                    db.execute(
                        "INSERT INTO e2e_runs (check_id, started_at, duration_ms, ok, detail) "
                        "VALUES (?, ?, ?, ?, ?)",
                        (r.check.id, r.started_at, r.duration_ms, int(r.ok), r.detail),
                    )
            finally:
                db.close()
