"""Free-form text arguments (``texts``): a string up to a byte limit, nothing else."""

from __future__ import annotations

from typing import Any

import pytest

from meshagents.trust.manifest import decide
from meshagents.trust.models import Manifest

pytestmark = pytest.mark.unit

KEY = "A" * 43 + "="


def manifest(cap: dict[str, Any]) -> Manifest:
    return Manifest.model_validate(
        {
            "device_id": "dev-1", "device_name": "dev-1", "device_key": KEY, "wg_public_key": KEY,
            "mesh_address": "10.42.0.10", "matrix_user": "@dev-1:hub", "approvers": ["@op:hub"],
            "controllers": [KEY], "capabilities": [cap], "serial": 1, "issued_at": 1, "expires_at": 2**31,
            "operator_key": KEY,
        },
        strict=False,
    )  # fmt: skip


WRITE = {"name": "fs.write", "path_prefixes": ["/tmp"], "texts": {"content": 8}, "requires_approval": True}


def test_text_within_limit_is_allowed() -> None:
    d = decide(manifest(WRITE), "fs.write", {"path": "/tmp/x", "content": "héllo"}, resolve=False)
    assert d.allowed and d.extra["content"] == "héllo" and d.requires_approval


@pytest.mark.parametrize(
    "content",
    ["x" * 9, "ééééé", 5, ["a"], None],  # 10 bytes of UTF-8; not strings
)
def test_text_over_limit_or_not_a_string_is_refused(content: Any) -> None:
    d = decide(manifest(WRITE), "fs.write", {"path": "/tmp/x", "content": content}, resolve=False)
    assert not d.allowed and d.code == "rejected_args"


def test_text_key_not_declared_is_refused() -> None:
    cap = {**WRITE, "texts": {}}
    d = decide(manifest(cap), "fs.write", {"path": "/tmp/x", "content": "a"}, resolve=False)
    assert not d.allowed and "content" in d.reason
