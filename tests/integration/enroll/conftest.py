"""Enrollment against a real hub (tests/testbed/hub_rig.py): one hub namespace for this package."""

from tests.testbed.hub_rig import hub_rig  # noqa: F401 - re-exported fixture
