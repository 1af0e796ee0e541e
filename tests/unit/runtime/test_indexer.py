"""The catalog indexer: metadata from source, warnings, determinism."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshagents.runtime.indexer import build_index, module_files, render_registry, scan_files, scan_source
from tests.testbed.host import ROOT

pytestmark = pytest.mark.unit

GOOD = '''"""mod doc."""
from meshagents.runtime.catalog import function

@function(id="x_thing", group="x", requires=["root", "network"])
def x_thing(name: str, count: int = 3, tags: list[str] | None = None) -> dict[str, int]:
    """Do the thing.

    More text.

    Args:
        name: what to do it to.
        count: how many times.
        tags: labels to add (repeat the option).
    """
    return {}
'''


def test_entry_from_source() -> None:
    res = scan_source(GOOD, "meshagents.functions.x.x_thing", "meshagents/functions/x/x_thing.py")
    assert res.problems == []
    (e,) = res.entries
    assert (e.id, e.group, e.entry, e.summary) == ("x_thing", "x", "x_thing", "Do the thing.")
    assert e.requires == ("network", "root")
    assert [(p.name, p.type, p.required, p.default, p.help) for p in e.params] == [
        ("name", "str", True, None, "what to do it to."),
        ("count", "int", False, "3", "how many times."),
        ("tags", "list[str] | None", False, "None", "labels to add (repeat the option)."),
    ]
    assert e.returns == "dict[str, int]"
    assert e.source_hash.startswith("sha256:")


def test_bad_metadata_warns() -> None:
    src = """from meshagents.runtime.catalog import function

@function(id="other_name", group="x", requires=["teleport"])
def f(a, b: int):
    return 1
"""
    res = scan_source(src, "meshagents.functions.x.x_thing", "meshagents/functions/x/x_thing.py")
    messages = " | ".join(p.message for p in res.problems)
    errors = sorted(p.message for p in res.problems if p.level == "error")
    assert errors == ["other_name: parameter 'a': no line in the docstring's Args:",
                      "other_name: parameter 'b': no line in the docstring's Args:"]
    assert "disagree" in messages
    assert "missing docstring" in messages
    assert "'a' is untyped" in messages
    assert "unknown requirement 'teleport'" in messages
    assert "missing return annotation" in messages
    assert "missing module docstring" in messages


def test_duplicate_id_is_an_error(tmp_path: Path) -> None:
    for name in ("x_thing", "x_other"):
        (tmp_path / "meshagents" / "functions" / "x").mkdir(parents=True, exist_ok=True)
        (tmp_path / "meshagents" / "functions" / "x" / f"{name}.py").write_text(GOOD)
    res = scan_files(tmp_path, module_files(tmp_path))
    assert any(p.level == "error" and "duplicate id 'x_thing'" in p.message for p in res.problems)
    assert [e.id for e in res.entries] == ["x_thing"]


def test_two_entry_points_in_one_module_is_an_error() -> None:
    src = GOOD + GOOD.split('"""mod doc."""\n', 1)[1].replace("x_thing", "x_thing2").replace(
        "from meshagents.runtime.catalog import function\n", ""
    )
    res = scan_source(src, "meshagents.functions.x.x_thing", "meshagents/functions/x/x_thing.py")
    assert any(p.level == "error" and "more than one" in p.message for p in res.problems)


def _write_catalog(root: Path, ids: list[str]) -> list[Path]:
    paths = []
    for fid in ids:
        d = root / "meshagents" / "functions" / fid.split("_")[0]
        d.mkdir(parents=True, exist_ok=True)
        p = d / f"{fid}.py"
        p.write_text(GOOD.replace("x_thing", fid))
        paths.append(p)
    return paths


@settings(max_examples=40, deadline=None)
@given(st.permutations(["a_one", "b_two", "c_three", "a_four", "z_five", "m_six"]))
def test_any_discovery_order_gives_identical_registry(
    tmp_path_factory: pytest.TempPathFactory, order: list[str]
) -> None:
    root = tmp_path_factory.mktemp("cat")
    paths = _write_catalog(root, sorted(order))
    by_id = {p.stem: p for p in paths}
    reference = render_registry(scan_files(root, paths).entries)
    shuffled = render_registry(scan_files(root, [by_id[i] for i in order]).entries)
    assert shuffled == reference
    assert reference.index("[functions.a_four]") < reference.index("[functions.z_five]")


def test_repository_registry_is_current() -> None:
    root = ROOT
    result, text = build_index(root)
    assert not result.errors, result.errors
    assert (root / "meshagents/registry.toml").read_text() == text, "registry.toml is stale: run ./fn index"


def test_shared_args_from_the_groups_table(tmp_path: Path) -> None:
    """A line `see args.toml [set]` takes its text from the group's args.toml; a missing entry is an error."""
    src = GOOD.replace("how many times.", "see args.toml [common]").replace(
        "labels to add (repeat the option).", "see args.toml [nowhere]"
    )
    shared = {"common": {"count": "how many times, written once."}}
    res = scan_source(src, "meshagents.functions.x.x_thing", "meshagents/functions/x/x_thing.py", shared)
    (e,) = res.entries
    assert [p.help for p in e.params] == ["what to do it to.", "how many times, written once.",
                                          "see args.toml [nowhere]"]
    assert [p.message for p in res.problems if p.level == "error"] == [
        "x_thing: parameter 'tags': not in the group's args.toml"
    ]
    group = tmp_path / "meshagents" / "functions" / "x"
    group.mkdir(parents=True)
    (group / "x_thing.py").write_text(src.replace("[nowhere]", "[common]"), encoding="utf-8")
    (group / "args.toml").write_text('[common]\ncount = "from the file."\ntags = "labels, shared."\n',
                                     encoding="utf-8")
    res = scan_files(tmp_path, [group / "x_thing.py"])
    assert res.errors == []
    assert [p.help for p in res.entries[0].params][1:] == ["from the file.", "labels, shared."]
