"""The enrollment pre-checks (a pure judgement): each missing prerequisite has its own code."""

from __future__ import annotations

import dataclasses

import pytest

from meshagents.enroll.precheck import MIN_FREE_BYTES, Facts, Needs, check, default_service

pytestmark = pytest.mark.unit

NOW = 1_800_000_000
GOOD = Facts(
    python=(3, 11), platform="linux", is_root=True, wg_kernel=True, wireguard_go=False, wg_quick=True,
    ip_tool=True, bwrap=None, now=NOW, hub_time=NOW + 2, free_bytes={"/var/lib/meshagents": 10 << 30},
    unwritable={}, interface_taken=None, systemd=True, user_systemd=False,
)  # fmt: skip
NEEDS = Needs(token_issued_at=NOW - 60, token_expires_at=NOW + 600, service="system")


def codes(facts: Facts = GOOD, needs: Needs = NEEDS) -> list[str]:
    return [p.code for p in check(facts, needs)]


def test_a_ready_device_goes() -> None:
    assert codes() == []


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"python": (3, 10)}, "precheck_python"),
        ({"wg_kernel": False, "wireguard_go": False}, "precheck_wireguard"),
        ({"ip_tool": False}, "precheck_wg_tools"),
        ({"is_root": False}, "precheck_root"),
        ({"interface_taken": "dummy"}, "precheck_interface"),
        ({"bwrap": "bubblewrap (bwrap) is not installed"}, "precheck_bwrap"),
        ({"hub_time": NOW + 120}, "precheck_clock"),
        ({"hub_time": None, "now": NOW - 3600}, "precheck_clock"),
        ({"now": NOW + 601, "hub_time": NOW + 601}, "precheck_token_expired"),
        ({"free_bytes": {"/var/lib/meshagents": MIN_FREE_BYTES - 1}}, "precheck_disk"),
        ({"unwritable": {"/etc/wireguard": "read-only file system"}}, "precheck_write"),
        ({"systemd": False}, "precheck_service"),
    ],
)
def test_each_missing_prerequisite_has_its_code(change: dict[str, object], code: str) -> None:
    assert code in codes(dataclasses.replace(GOOD, **change))  # type: ignore[arg-type]


def test_userspace_wireguard_is_enough() -> None:
    assert codes(dataclasses.replace(GOOD, wg_kernel=False, wireguard_go=True)) == []


def test_weak_sandbox_chosen_means_no_bwrap_needed() -> None:
    facts = dataclasses.replace(GOOD, bwrap="bubblewrap (bwrap) is not installed")
    assert codes(facts, dataclasses.replace(NEEDS, sandbox_weak=True)) == []


def test_termux_needs_no_tunnel_tools_nor_root() -> None:
    facts = dataclasses.replace(
        GOOD, platform="termux", is_root=False, wg_kernel=False, wireguard_go=False, wg_quick=False,
        systemd=False,
    )  # fmt: skip
    needs = dataclasses.replace(NEEDS, own_tunnel=False, service="termux", sandbox_weak=True)
    assert codes(facts, needs) == []
    assert default_service(facts) == "termux"


def test_every_problem_is_reported_at_once() -> None:
    facts = dataclasses.replace(GOOD, bwrap="no", wg_kernel=False, free_bytes={"/x": 0})
    assert codes(facts) == ["precheck_wireguard", "precheck_bwrap", "precheck_disk"]


@pytest.mark.parametrize(
    ("change", "kind"),
    [
        ({}, "system"),
        ({"is_root": False, "user_systemd": True}, "user"),
        ({"is_root": False, "systemd": False, "platform": "wsl"}, "login"),
        ({"systemd": False}, "none"),
    ],
)
def test_default_service(change: dict[str, object], kind: str) -> None:
    assert default_service(dataclasses.replace(GOOD, **change)) == kind  # type: ignore[arg-type]
