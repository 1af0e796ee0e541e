"""Signature -> CLI option conversion."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import pytest

from meshagents.errors import UsageError
from meshagents.runtime.params import parse_args

pytestmark = pytest.mark.unit


def sample(
    device_name: str,
    ttl_s: int = 600,
    ratio: float = 0.5,
    dry_run: bool = False,
    out: Path | None = None,
    mode: Literal["light", "deep"] = "light",
    allow: list[str] | None = None,
    extra: dict[str, int] | None = None,
) -> None:
    """Sample."""


def test_types_are_converted() -> None:
    kw = parse_args(
        "sample",
        sample,
        [
            "--device-name",
            "pc",
            "--ttl-s",
            "5",
            "--dry-run",
            "--out",
            "/tmp/x",
            "--mode",
            "deep",
            "--allow",
            "/bin/ls",
            "--allow",
            "/bin/cat",
            "--extra",
            '{"a": 1}',
        ],
    )
    assert kw == {
        "device_name": "pc",
        "ttl_s": 5,
        "ratio": 0.5,
        "dry_run": True,
        "out": Path("/tmp/x"),
        "mode": "deep",
        "allow": ["/bin/ls", "/bin/cat"],
        "extra": {"a": 1},
    }


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["--device-name", "x", "--ttl-s", "soon"],
        ["--device-name", "x", "--mode", "medium"],
        ["--device-name", "x", "--extra", "{not json"],
    ],
)
def test_bad_usage(argv: list[str]) -> None:
    with pytest.raises(UsageError):
        parse_args("sample", sample, argv)
