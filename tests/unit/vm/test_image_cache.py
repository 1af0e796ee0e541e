"""A cached image counts only when whole: a killed build's leftovers are never re-used."""

from __future__ import annotations

from pathlib import Path

import pytest

from meshagents.testbed.vm import image
from meshagents.testbed.vm.recipe import IMAGE_FILES, Recipe, recipe_sha


def test_cached_needs_every_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FN_CACHE_DIR", str(tmp_path))
    d = tmp_path / "vm" / recipe_sha(Recipe())
    d.mkdir(parents=True)
    for name in IMAGE_FILES[:-1]:
        (d / name).write_text("x")
    assert image.cached() is None
    (d / IMAGE_FILES[-1]).write_text("{}")
    found = image.cached()
    assert found is not None and found.dir == d and found.key == d / "id_ed25519"


def test_build_directories_are_not_images(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FN_CACHE_DIR", str(tmp_path))
    sha = recipe_sha(Recipe())
    half = tmp_path / "vm" / f".build-{sha}-dead" / "image"
    half.mkdir(parents=True)
    for name in IMAGE_FILES:
        (half / name).write_text("x")
    assert image.cached() is None


def test_remove_build_dir_leaves_nothing(tmp_path: Path) -> None:
    d = tmp_path / ".build-x"
    (d / "root" / "etc").mkdir(parents=True)
    (d / "root" / "etc" / "f").write_text("x")
    image._remove_build_dir(d)
    assert not d.exists()
