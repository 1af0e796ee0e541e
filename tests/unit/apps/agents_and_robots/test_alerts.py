"""Stale-device and replay alerts."""

from __future__ import annotations

import pytest

from meshagents.apps.agents_and_robots.alerts import DEFAULT_STALE_AFTER_S, StaleWatch, replay_alert

pytestmark = pytest.mark.unit

T0 = 1_800_000_000.0
DAY = 24 * 3600.0


def test_default_threshold_is_a_day() -> None:
    assert DEFAULT_STALE_AFTER_S == DAY


def test_stale_once_then_back_once() -> None:
    w = StaleWatch()
    assert w.check({"pi": T0 - 60, "wsl": T0 - DAY + 1}, T0) == []
    (alert,) = w.check({"pi": T0 - 60, "wsl": T0 - DAY + 1}, T0 + 2)
    assert (alert.kind, alert.device) == ("stale", "wsl") and "last handshake 24 h ago" in alert.text
    assert w.check({"pi": T0 - 60, "wsl": T0 - DAY + 1}, T0 + 3600) == []  # not again
    assert w.stale == {"wsl"}
    (back,) = w.check({"pi": T0 - 60, "wsl": T0 + 3600}, T0 + 3601)
    assert (back.kind, back.device) == ("back", "wsl") and w.stale == frozenset()


def test_never_connected_and_days() -> None:
    w = StaleWatch()
    alerts = w.check({"new": None, "old": T0 - 5 * DAY}, T0)
    assert [a.device for a in alerts] == ["new", "old"]
    assert "never completed a WireGuard handshake" in alerts[0].text
    assert "5 days ago" in alerts[1].text


def test_configurable_threshold_and_forgetting() -> None:
    w = StaleWatch(threshold_s=60)
    assert [a.kind for a in w.check({"pi": T0 - 61}, T0)] == ["stale"]
    assert w.check({}, T0 + 1) == [] and w.stale == frozenset()  # removed devices are forgotten
    with pytest.raises(ValueError):
        StaleWatch(threshold_s=0)


def test_html_escaped_and_replay() -> None:
    (a,) = StaleWatch().check({"<b>x</b>": None}, T0)
    assert "<b>" not in a.html
    r = replay_alert("pi", "req-1", "nonce seen at 10:00")
    assert r.kind == "replay" and "rejected_nonce" in r.text and "req-1" in r.text and "nonce seen" in r.text
