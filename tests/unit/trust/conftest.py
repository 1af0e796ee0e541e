"""Test keys and manifests for the trust core (tests/testbed/trust_keys.py)."""

from tests.testbed.trust_keys import keys, make_manifest  # noqa: F401 - re-exported fixtures
