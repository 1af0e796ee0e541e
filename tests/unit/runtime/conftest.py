from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.testbed.host import ROOT

RESOURCES = ROOT / "tests" / "resources" / "doctor"


@pytest.fixture
def sample_root(tmp_path: Path) -> Path:
    """A copy of the deliberately broken sample project under tests/resources/doctor."""
    root = tmp_path / "project"
    shutil.copytree(RESOURCES, root)
    return root
