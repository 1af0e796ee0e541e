"""The record of running rigs and what ``./fn demo --cleanup`` would touch (no root needed)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from meshagents.testbed.rig.runs import RunRecord, dead_runs, namespaces_of

pytestmark = pytest.mark.unit


def test_namespaces_of_takes_only_that_run() -> None:
    listing = "\n".join(
        [
            "rha1b2c3",
            "rda1b2c31 (id: 4)",
            "rda1b2c312",
            "rka1b2c3",
            "rhffffff",
            "rda1b2c3x",
            "mha1b2c3",
            "dk-a1b2c3",
        ]
    )
    assert namespaces_of("a1b2c3", listing) == ["rha1b2c3", "rda1b2c31", "rda1b2c312", "rka1b2c3"]
    assert namespaces_of("a1b2c3", "") == []


def test_record_lists_children_and_only_dead_runs_are_returned(tmp_path: Path) -> None:
    live = RunRecord("a1b2c3", tmp_path / "w", own_workdir=True, runs_dir=tmp_path)
    live.child("synapse", 123, ["python", "-m", "synapse.app.homeserver", "-c", "/w/hs.yaml"])
    data = json.loads(live.path.read_text())
    assert data["pid"] == os.getpid() and data["children"][0]["cmd"].endswith("/w/hs.yaml")
    assert dead_runs(tmp_path) == []  # this process is alive
    (tmp_path / "d4e5f6.json").write_text(json.dumps({"suffix": "d4e5f6", "pid": 2**22 + 7, "children": []}))
    (tmp_path / "junk.json").write_text("{not json")
    assert [r["suffix"] for r in dead_runs(tmp_path)] == ["d4e5f6"]
    live.remove()
    live.remove()  # idempotent
    assert not live.path.exists()
    assert dead_runs(tmp_path / "missing") == []
