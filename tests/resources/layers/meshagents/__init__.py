"""Sample tree for the layers check (tests/unit/runtime/test_layers.py)."""
