"""The rule that decides whether the agent's service is up to stay (meshagents.enroll.ready.assess),
and the waiter driven by scripted looks (no systemd here: the VM test runs it for real)."""

from __future__ import annotations

from pathlib import Path

import pytest

from meshagents import readymark as marker
from meshagents.enroll.ready import Assessment, Observation, assess, wait_ready
from meshagents.errors import FnError

TIMEOUT, STABLE = 60.0, 5.0


def ob(t: float, active: str = "active", pid: int = 100, restarts: int = 0, marker_pid: int = 0,
       alive: bool = True) -> Observation:  # fmt: skip
    return Observation(t, active, pid, restarts, marker_pid, alive)


def judge(*history: Observation) -> Assessment:
    return assess(list(history), timeout_s=TIMEOUT, stable_s=STABLE)


def test_nothing_seen_yet_is_undecided() -> None:
    assert judge() == Assessment(False, False)
    assert not judge(ob(0.0), ob(3.0)).done


def test_ready_then_the_same_process_stable_for_stable_s_is_ok() -> None:
    a = judge(ob(0.0), ob(8.0, marker_pid=100), ob(10.0, marker_pid=100), ob(13.0, marker_pid=100))
    assert a.done and a.ok and a.ready_after_s == 8.0


def test_ready_but_not_yet_watched_long_enough_waits() -> None:
    assert not judge(ob(0.0), ob(8.0, marker_pid=100), ob(12.9, marker_pid=100)).done


def test_a_restart_is_a_crash_even_after_the_marker() -> None:
    a = judge(ob(0.0), ob(8.0, marker_pid=100), ob(10.0, pid=101, restarts=1, marker_pid=100))
    assert a.done and not a.ok and a.code == "agent_crashed"


def test_a_restart_loop_before_any_marker_is_a_crash_not_a_timeout() -> None:
    a = judge(ob(0.0), ob(2.0, active="activating", pid=0, restarts=1))
    assert (a.done, a.ok, a.code) == (True, False, "agent_crashed")


def test_a_failed_unit_is_a_crash() -> None:
    a = judge(ob(0.0), ob(1.0, active="failed", pid=0))
    assert (a.done, a.code) == (True, "agent_crashed")


def test_a_marker_of_an_earlier_process_does_not_count() -> None:
    # the marker names pid 90 (a start before this one), the unit runs 100: not ready
    a = judge(ob(0.0, marker_pid=90), ob(10.0, marker_pid=90), ob(TIMEOUT, marker_pid=90))
    assert (a.done, a.ok, a.code) == (True, False, "agent_not_ready")


def test_ready_then_gone_is_a_crash() -> None:
    a = judge(ob(0.0), ob(8.0, marker_pid=100), ob(9.0, active="deactivating", marker_pid=100))
    assert (a.done, a.code) == (True, "agent_crashed")


def test_no_marker_by_the_timeout_says_the_unit_state() -> None:
    a = judge(ob(0.0), ob(TIMEOUT + 0.1))
    assert (a.done, a.ok, a.code) == (True, False, "agent_not_ready")
    assert "it runs" in a.message


def test_ready_just_before_the_timeout_gets_its_stable_window() -> None:
    assert not judge(ob(0.0), ob(TIMEOUT - 1, marker_pid=100), ob(TIMEOUT + 1, marker_pid=100)).done
    a = judge(ob(0.0), ob(TIMEOUT - 1, marker_pid=100), ob(TIMEOUT + STABLE, marker_pid=100))
    assert a.ok


def test_no_unit_the_marker_process_must_live() -> None:
    # termux / login: no service manager; the marker's pid is the process
    a = judge(ob(0.0, active="", pid=0, alive=False), ob(4.0, active="", pid=7, marker_pid=7),
              ob(9.5, active="", pid=7, marker_pid=7))  # fmt: skip
    assert a.ok
    b = judge(ob(0.0, active="", pid=7, marker_pid=7), ob(1.0, active="", pid=7, marker_pid=7, alive=False))
    assert (b.done, b.code) == (True, "agent_crashed")


def test_wait_ready_raises_the_code_with_the_resume_hint(tmp_path: Path) -> None:
    looks = iter([ob(0.0), ob(1.0, active="failed", pid=0)])
    with pytest.raises(FnError) as err:
        wait_ready("none", tmp_path / "ready.json", poll_s=0, look=lambda *_: next(looks))
    assert err.value.code == "agent_crashed" and "--resume" in err.value.message


def test_wait_ready_returns_what_the_marker_says(tmp_path: Path) -> None:
    m = marker.write(tmp_path, pid=100, matrix_device="DEV", device_room="!r:hs")
    looks = iter([ob(0.0), ob(1.0, marker_pid=100), ob(6.5, marker_pid=100)])
    got = wait_ready("none", m, poll_s=0, look=lambda *_: next(looks))
    assert got["ready_after_s"] == 1.0 and got["matrix_device"] == "DEV" and got["pid"] == 100


def test_the_marker_file_round_trips_and_is_private(tmp_path: Path) -> None:
    m = marker.write(tmp_path, pid=5)
    assert (m.stat().st_mode & 0o777) == 0o600 and marker.read(m)["pid"] == 5  # type: ignore[index]
    marker.clear(tmp_path)
    assert marker.read(m) is None
    (tmp_path / "config.json").write_text('{"data_dir": "sub"}')
    assert marker.marker_for_config(tmp_path / "config.json") == tmp_path / "sub" / "ready.json"
    (tmp_path / "config.json").write_text("{}")
    assert marker.marker_for_config(tmp_path / "config.json") == tmp_path / "ready.json"
