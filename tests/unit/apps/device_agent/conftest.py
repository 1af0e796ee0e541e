"""The agent's unit tests share the unsandboxed rig and its pipeline (tests/testbed/agent_rig.py)."""

from tests.testbed.agent_rig import pipe, rig  # noqa: F401 - fixtures
