"""Alerts for #operator-approvals that do not come from a command: a device gone
stale, a replay a device reported. Pure: the shell feeds in what it knows.

    watch = StaleWatch(threshold_s=24 * 3600)
    for alert in watch.check({"home-wsl": last_handshake_or_None, ...}, now): post(alert)
    replay_alert(device, request_id, reason) -> Alert

A device is stale when its last WireGuard handshake is older than the threshold
(24 h by default, configurable) or it never made one. Each device is reported once
when it goes stale and once when it is back, not on every check.
"""

from __future__ import annotations

import html
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

DEFAULT_STALE_AFTER_S = 24 * 3600.0

AlertKind = Literal["stale", "back", "replay"]


@dataclass(frozen=True)
class Alert:
    kind: AlertKind
    device: str
    text: str
    html: str


def _alert(kind: AlertKind, device: str, text: str) -> Alert:
    return Alert(kind, device, text, html.escape(text))


def _ago(seconds: float) -> str:
    hours = seconds / 3600
    return f"{hours:.0f} h" if hours < 48 else f"{hours / 24:.0f} days"


class StaleWatch:
    def __init__(self, *, threshold_s: float = DEFAULT_STALE_AFTER_S) -> None:
        if threshold_s <= 0:
            raise ValueError("threshold_s must be positive")
        self.threshold_s = threshold_s
        self._stale: set[str] = set()

    @property
    def stale(self) -> frozenset[str]:
        return frozenset(self._stale)

    def check(self, last_handshakes: Mapping[str, float | None], now: float) -> list[Alert]:
        """Alerts for devices that went stale or came back since the last check.
        Devices no longer listed (revoked, removed) are forgotten silently."""
        out: list[Alert] = []
        for device in sorted(last_handshakes):
            last = last_handshakes[device]
            is_stale = last is None or now - last > self.threshold_s
            if is_stale and device not in self._stale:
                self._stale.add(device)
                if last is None:
                    text = f"alert: {device} has never completed a WireGuard handshake"
                else:
                    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(last))
                    text = (f"alert: {device} is stale: last handshake {_ago(now - last)} ago ({when}); "
                            "commands for it wait in its room until it is back")
                out.append(_alert("stale", device, text))
            elif not is_stale and device in self._stale:
                self._stale.discard(device)
                when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(last or now))
                out.append(_alert("back", device, f"{device} is back: handshake at {when}"))
        self._stale &= set(last_handshakes)
        return out


def replay_alert(device: str, request_id: str, reason: str = "") -> Alert:
    """A device refused an envelope as a replay (``rejected_nonce``)."""
    detail = f": {reason}" if reason else ""
    return _alert("replay", device,
                  f"alert: {device} refused request {request_id} as a replay (rejected_nonce){detail}; "
                  "someone may be re-sending old envelopes")
