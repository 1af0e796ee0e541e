"""Shared test policy.

Tests that need root or a real service declare it (``require_root()``, a fixture
that starts the service, or ``pytest.skip`` with the reason). On a machine without
them they skip; under ``CI=true`` a skip is turned into a failure, so CI can never
go green by skipping.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from tests.testbed.host import IN_CI, ROOT, require_binary, require_root

# No timed assertions in tests: hypothesis' per-example deadline is one (a loaded machine
# made a 200 ms limit fail a correct test), so it is off for every property test.
settings.register_profile("meshagents", deadline=None)
settings.load_profile("meshagents")

__all__ = ["ROOT", "require_binary", "require_root"]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if IN_CI and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped under CI=true, which counts as a failure: {reason}"


@pytest.fixture
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private FN_STATE_DIR for the test."""
    d = tmp_path / "state"
    d.mkdir()
    monkeypatch.setenv("FN_STATE_DIR", str(d))
    return d


# The session's Debian VM (tests/testbed/vm.py): booted lazily by the first test that asks.
from tests.testbed.vm import vm, vm_guest, vm_segment_ns  # noqa: E402,F401 - re-exported fixtures

# Fixtures that boot a Debian VM: a test that uses one is in the VM lane (marker ``vm``,
# meshagents/runtime/testrun.py), whether or not its module says so.
VM_FIXTURES = frozenset({"vm", "vm_guest", "vm_segment_ns", "vm_hub"})


@pytest.hookimpl(tryfirst=True)  # before -m deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        if VM_FIXTURES & names:
            item.add_marker(pytest.mark.vm)
        if "vm_hub" in names:  # the whole hub provisioned on its own VM: a lane of its own
            item.add_marker(pytest.mark.vm_hub)
