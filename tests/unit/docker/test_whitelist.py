"""The executable whitelist: exact matches only, refusals with rejected_args."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meshagents.docker.whitelist import check_argv, invalid_entries, whitelist_risks
from meshagents.errors import FnError

pytestmark = pytest.mark.unit

WL = ["ls", "echo", "/bin/cat"]


def _refused(argv: list[str], wl: list[str] = WL) -> FnError:
    with pytest.raises(FnError) as err:
        check_argv(argv, wl)
    assert err.value.code == "rejected_args"
    return err.value


def test_exact_entries_pass() -> None:
    assert check_argv(["ls", "-la", "/"], WL) == "ls"
    assert check_argv(["/bin/cat", "/etc/passwd"], WL) == "/bin/cat"


@pytest.mark.parametrize(
    "argv",
    [
        ["rm", "-rf", "/"],
        ["/bin/ls"],  # bare `ls` is listed, not this path
        ["cat"],  # only /bin/cat is listed
        ["./ls"],
        ["../bin/ls"],
        ["/bin/../bin/cat"],
        ["ls "],
        [" ls"],
        ["LS"],
        ["ls\x00rm"],
        [""],
    ],
)
def test_anything_else_is_refused(argv: list[str]) -> None:
    _refused(argv)


def test_shape_errors() -> None:
    _refused([])
    assert "one string" in _refused("ls -la", WL).message  # type: ignore[arg-type]
    _refused(["ls", "a\x00b"])
    _refused(["ls"] + ["x"] * 300)
    _refused(["ls", "x" * 70_000])


def test_refusal_names_the_executable_and_the_whitelist() -> None:
    err = _refused(["rm", "x"])
    assert err.details == {"executable": "rm", "whitelist": sorted(WL)}


def test_bad_whitelist_entries_never_match() -> None:
    wl = ["./run", "bin/ls", "/a/../b", "", "ok"]
    assert invalid_entries(wl) == ["./run", "bin/ls", "/a/../b", ""]
    for exe in ("./run", "bin/ls", "/a/../b", ""):
        _refused([exe], wl)
    assert check_argv(["ok"], wl) == "ok"


def test_risks_name_shells_and_runners() -> None:
    risks = whitelist_risks(["ls", "sh", "/usr/bin/env", "busybox", "./x"])
    assert len(risks) == 4
    assert any("'sh'" in r for r in risks) and any("/usr/bin/env" in r for r in risks)
    assert whitelist_risks(["ls", "cat", "df"]) == []


@given(exe=st.text(min_size=1, max_size=20), wl=st.lists(st.text(max_size=20), max_size=5))
def test_property_allowed_iff_exactly_listed(exe: str, wl: list[str]) -> None:
    try:
        got = check_argv([exe], wl)
    except FnError as exc:
        assert exc.code == "rejected_args"
        assert exe not in wl or exe in invalid_entries(wl)
    else:
        assert got == exe and exe in wl and exe not in invalid_entries(wl)
