"""``./fn e2e``'s runner (meshagents/testbed/e2e.py) on a throwaway project: checks from app.md front
matter, one pytest run, one ``e2e_runs`` row per check (no rig, no root)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from meshagents.testbed.e2e import Check, load_checks, record, run_checks

pytestmark = pytest.mark.unit

APP_MD = """---
name: {name}
summary: test app
e2e_checks:
{checks}
---
body
"""


def _project(root: Path) -> None:
    (root / "tests").mkdir()
    (root / "tests" / "test_demo.py").write_text(
        "import pytest\n"
        "def test_b(): pass\n"
        "def test_a(): assert False, 'boom'\n"
        "@pytest.mark.skip(reason='later')\n"
        "def test_skipped(): pass\n"
        "@pytest.mark.parametrize('x', [1, 2])\n"
        "def test_p(x): pass\n"
    )
    for name, checks in {
        "alpha": [("ok_one", "tests/test_demo.py::test_b"), ("bad", "tests/test_demo.py::test_a")],
        "beta": [
            ("skip", "tests/test_demo.py::test_skipped"),
            ("param", "tests/test_demo.py::test_p"),
            ("missing", "tests/test_demo.py::test_nope"),
        ],
    }.items():
        (root / "meshagents" / "apps" / name).mkdir(parents=True)
        lines = "\n".join(f"  - id: {i}\n    test: {t}" for i, t in checks)
        (root / "meshagents" / "apps" / name / "app.md").write_text(APP_MD.format(name=name, checks=lines))


def test_checks_run_once_and_land_in_e2e_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "proj"
    root.mkdir()
    _project(root)
    monkeypatch.setenv("FN_STATE_DIR", str(tmp_path / "state"))
    checks = load_checks(root)
    assert [(c.app, c.id) for c in checks] == [
        ("alpha", "ok_one"), ("alpha", "bad"), ("beta", "skip"), ("beta", "param"), ("beta", "missing"),
    ]  # fmt: skip
    assert [c.id for c in load_checks(root, "beta")] == ["skip", "param", "missing"]
    results = {r.check.id: r for r in run_checks(root, checks, ("-q",))}
    assert results["ok_one"].ok and not results["bad"].ok and "boom" in results["bad"].detail
    assert not results["skip"].ok and "skipped" in results["skip"].detail
    assert results["param"].ok and results["param"].detail == "2 passed"
    assert not results["missing"].ok
    record(list(results.values()))
    db = sqlite3.connect(tmp_path / "state" / "beta" / "operations.db")
    rows = db.execute("SELECT check_id, ok FROM e2e_runs ORDER BY id").fetchall()
    assert rows == [("skip", 0), ("param", 1), ("missing", 0)]


def test_unknown_app_is_an_error(tmp_path: Path) -> None:
    from meshagents.errors import FnError

    (tmp_path / "meshagents" / "apps").mkdir(parents=True)
    with pytest.raises(FnError) as err:
        load_checks(tmp_path, "nope")
    assert err.value.code == "app_not_found"
    assert run_checks(tmp_path, []) == []
    assert Check("a", "b", "c").test == "c"
