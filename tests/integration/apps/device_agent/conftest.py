"""The device agent's rig (tests/testbed/agent_world.py): a real Synapse, an operator, a stand-in bot."""

from tests.testbed.agent_world import make_world, synapse  # noqa: F401 - re-exported fixtures
