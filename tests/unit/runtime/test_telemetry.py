"""Telemetry rows, the function_stats view, and failure isolation."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from meshagents.errors import FnError
from meshagents.runtime import telemetry
from meshagents.runtime.api import call, invoke

pytestmark = pytest.mark.unit


def test_stats_view_percentiles(state_dir: Path) -> None:
    for ms in range(1, 101):  # 1..100 ms, one failure
        telemetry.record(
            telemetry.CallRecord("f", time.time(), float(ms), ms != 50, None if ms != 50 else "x", "api")
        )
    (row,) = telemetry.stats()
    assert row["count"] == 100
    assert row["success_rate"] == 0.99
    assert row["p50_ms"] == 50.0
    assert row["p95_ms"] == 95.0


def test_api_call_records_caller(state_dir: Path) -> None:
    out = call("wg_keygen", caller="wg_hub")
    assert "public_key" in out
    assert telemetry.recent("wg_keygen")[0]["caller"] == "wg_hub"


def test_error_code_recorded(state_dir: Path) -> None:
    def fail() -> None:
        raise FnError("nope", "no")

    with pytest.raises(FnError):
        invoke("t_fail", fail, {}, caller="api")
    assert telemetry.recent("t_fail")[0]["error_code"] == "nope"


def test_telemetry_failure_never_fails_the_call(
    state_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken() -> None:
        raise OSError("disk full")

    monkeypatch.setattr(telemetry, "connection", broken)
    monkeypatch.setattr(telemetry, "_warned", False)
    assert invoke("t_ok", lambda: 42, {}, caller="api") == 42
    assert "telemetry not recorded" in capsys.readouterr().err
