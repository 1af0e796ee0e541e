"""docs/schemas/*.json are what the models export now (regenerate: python -m meshagents.trust.schemas)."""

from __future__ import annotations

import json

import pytest

from meshagents.trust.schemas import render_schemas, schema_dir, stale_schemas

pytestmark = pytest.mark.unit


def test_schemas_are_current() -> None:
    assert stale_schemas() == [], "run: .venv/bin/python -m meshagents.trust.schemas"


def test_schemas_forbid_unknown_fields() -> None:
    for name, text in render_schemas().items():
        schema = json.loads(text)
        assert schema["additionalProperties"] is False, name
    assert (schema_dir() / "manifest.json").exists()
