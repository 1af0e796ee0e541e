"""The bot's rig (tests/testbed/bot_world.py): a real Synapse, test devices, a stand-in hub."""

from tests.testbed.bot_world import make_world, synapse  # noqa: F401 - re-exported fixtures
