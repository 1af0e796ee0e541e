"""The hub's rig (tests/testbed/hub_rig.py): one hub namespace per package, devices enrolled into it."""

from tests.testbed.hub_rig import hub_rig  # noqa: F401 - re-exported fixture
