"""The Matrix layer's rig (tests/testbed/matrix_clients.py): the session Synapse and clients on our base."""

from tests.testbed.matrix_clients import make_client, matrix_commander, synapse  # noqa: F401 - re-exported fixtures
