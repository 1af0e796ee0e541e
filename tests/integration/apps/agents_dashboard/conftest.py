"""The dashboard's rig (tests/testbed/cockpit.py): a real hub, a bot stand-in, the dashboard, Chromium."""

from tests.testbed.cockpit import browser_context, cockpit, page  # noqa: F401 - re-exported fixtures
