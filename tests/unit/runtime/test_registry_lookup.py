"""``registry.lookup`` reads one function's block of the registry (a cold process parses
~1 kB, not the whole 75 kB file); the rows must be the whole file's, for every function."""

from __future__ import annotations

from meshagents.runtime import registry


def test_each_block_parses_to_the_whole_files_row() -> None:
    path = registry.registry_path()
    whole = registry._parse(path, path.read_text(encoding="utf-8"))
    assert whole
    for fid, row in whole.items():
        assert registry._one(path, fid) == row, fid


def test_unknown_or_odd_ids_have_no_block() -> None:
    text = registry.registry_path().read_text(encoding="utf-8")
    assert registry._section(text, "no_such_function") is None
    assert registry._section(text, "wg_status.params") is None
    assert registry._section(text, "wg_status]") is None
