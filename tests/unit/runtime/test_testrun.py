"""fn test's lanes: when the whole suite is asked for, and how two exit statuses combine."""

from __future__ import annotations

from pathlib import Path

import pytest

from meshagents.runtime.testrun import NO_TESTS, OK, combine, wants_lanes

pytestmark = pytest.mark.unit


@pytest.fixture
def tests_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "tests" / "unit").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    return tmp_path / "tests"


@pytest.mark.parametrize(
    "args",
    [[], ["-p", "randomly"], ["tests"], ["-x", "tests", "--randomly-seed=7"], ["--timeout", "60"]],
)
def test_the_whole_suite_runs_in_lanes(tests_root: Path, args: list[str]) -> None:
    assert wants_lanes(args, tests_root)


@pytest.mark.parametrize(
    "args",
    [
        ["tests/unit"],
        ["tests/unit/test_x.py::test_y"],
        ["-m", "unit"],
        ["-k", "enroll"],
        ["-xk", "enroll"],
        ["--lf"],
        ["tests", "--deselect=tests/unit"],
    ],
)
def test_a_selection_runs_as_one_pytest(tests_root: Path, args: list[str]) -> None:
    assert not wants_lanes(args, tests_root)


@pytest.mark.parametrize(
    ("main_rc", "vm_rc", "suite"),
    [
        (OK, OK, OK),
        (OK, NO_TESTS, OK),  # a tree without VM tests
        (NO_TESTS, OK, OK),
        (NO_TESTS, NO_TESTS, NO_TESTS),  # nothing ran at all: pytest's own "no tests"
        (1, OK, 1),
        (OK, 1, 1),
        (NO_TESTS, 2, 2),
        (3, 1, 3),
    ],
)
def test_the_suite_fails_when_either_lane_fails(main_rc: int, vm_rc: int, suite: int) -> None:
    assert combine(main_rc, vm_rc) == suite


@pytest.mark.parametrize(
    ("rcs", "suite"),
    [((OK, OK, OK), OK), ((OK, NO_TESTS, OK), OK), ((OK, OK, 1), 1), ((NO_TESTS,) * 3, NO_TESTS)],
)
def test_three_lanes_combine_the_same_way(rcs: tuple[int, ...], suite: int) -> None:
    assert combine(*rcs) == suite
