from __future__ import annotations

import shutil
from pathlib import Path

import pytest

RESOURCES = Path(__file__).resolve().parents[2] / "resources" / "doctor"


@pytest.fixture
def sample_root(tmp_path: Path) -> Path:
    """A copy of the deliberately broken sample project under tests/resources/doctor."""
    root = tmp_path / "project"
    shutil.copytree(RESOURCES, root)
    return root
