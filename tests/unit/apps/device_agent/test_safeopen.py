"""safeopen: a resolved path opened component by component, no symlink followed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from meshagents.apps.device_agent.capabilities import safeopen

pytestmark = pytest.mark.unit


def test_plain_paths_open_and_links_anywhere_refuse(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "f").write_text("in")
    (tmp_path / "out").write_text("out")
    fd = safeopen.open_file(str(tmp_path / "d" / "f"), os.O_RDONLY)
    assert os.read(fd, 10) == b"in"
    os.close(fd)
    os.close(safeopen.open_dir(str(tmp_path / "d")))
    (tmp_path / "leaf").symlink_to(tmp_path / "out")
    (tmp_path / "mid").symlink_to(tmp_path / "d")
    for path, opener in (
        (tmp_path / "leaf", lambda p: safeopen.open_file(p, os.O_RDONLY)),
        (tmp_path / "mid" / "f", lambda p: safeopen.open_file(p, os.O_RDONLY)),
        (tmp_path / "mid", safeopen.open_dir),
        (tmp_path / "d" / "f", safeopen.open_dir),  # a file where a directory was
    ):
        with pytest.raises(safeopen.Swapped):
            opener(str(path))
    for bad in ("relative", str(tmp_path) + "/../x", str(tmp_path) + "//d"):
        with pytest.raises(OSError):
            safeopen.open_dir(bad)
