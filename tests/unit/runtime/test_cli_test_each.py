"""``fn test --each``: every test of a file in a pytest process of its own.

The files here are tiny temporary test modules; one has a test that passes only after
its neighbour, which is what ``--each`` exists to find.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from meshagents.runtime.cli import cli

pytestmark = pytest.mark.unit

ALONE = """
def test_one():
    assert 1 + 1 == 2

def test_two():
    assert "a" * 2 == "aa"
"""

# test_reads passes after test_writes (file order), never alone
NEIGHBOUR = """
SEEN = []

def test_writes():
    SEEN.append(1)

def test_reads():
    assert SEEN == [1]
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project root of two test files; `fn test` chdirs into it (undone after the test)."""
    (tmp_path / "test_alone.py").write_text(ALONE)
    (tmp_path / "test_neighbour.py").write_text(NEIGHBOUR)
    monkeypatch.setenv("FN_PROJECT_ROOT", str(tmp_path))
    # the runner is under test, not the installed plugins: children start in a fraction of the time
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_each_runs_every_test_alone_and_finds_one_that_needs_its_neighbour(project: Path) -> None:
    # in one process, in file order, test_neighbour.py passes; --each runs its tests apart
    res = CliRunner().invoke(
        cli, ["test", "--each", "--jobs", "2", "test_alone.py", "test_neighbour.py", "-q"]
    )
    assert res.exit_code == 1, res.output
    assert "4 test(s) from 2 path(s), each alone, 2 at once" in res.output
    for node in ("test_alone.py::test_one", "test_alone.py::test_two", "test_neighbour.py::test_writes"):
        assert f"PASS {node}" in res.output
    assert "FAIL test_neighbour.py::test_reads" in res.output
    assert "assert [] == [1]" in res.output  # the failing run's own report is shown
    assert "3 passed alone, 1 failed" in res.output
    assert res.output.rstrip().endswith("failed alone: test_neighbour.py::test_reads")


def test_each_options_select_and_errors(project: Path) -> None:
    res = CliRunner().invoke(cli, ["test", "--each", "test_neighbour.py", "-k", "writes"])
    assert res.exit_code == 0, res.output
    assert "1 test(s) from 1 path(s)" in res.output and "1 passed alone, 0 failed" in res.output
    assert CliRunner().invoke(cli, ["test", "--each", "-q"]).exit_code == 2  # no file: usage
    res = CliRunner().invoke(cli, ["test", "--each", "test_alone.py", "-k", "nothing_matches"])
    assert res.exit_code == 1 and "collecting test_alone.py failed" in res.output
