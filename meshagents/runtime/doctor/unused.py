"""`unused`: catalog functions that no app, pipeline, doctor check or other function uses (warning)."""

from __future__ import annotations

from pathlib import Path

from meshagents.runtime.doctor.base import Problem
from meshagents.runtime.doctor.usage_scan import pipeline_calls, python_calls, tree_calls
from meshagents.runtime.indexer import build_index


def check(root: Path) -> list[Problem]:
    result, _ = build_index(root)
    used: set[str] = set()
    for library in ("apps", "enroll"):  # enroll: the device's enrollment, run as device_enroll
        if (root / "meshagents" / library).is_dir():
            used |= tree_calls(root / "meshagents" / library)
    if (root / "meshagents" / "runtime" / "doctor").is_dir():  # checks call domain functions by id
        used |= tree_calls(root / "meshagents" / "runtime" / "doctor")
    pipes = root / "meshagents" / "pipelines"
    if pipes.is_dir():
        for path in sorted(pipes.iterdir()):
            if path.is_file():
                used |= pipeline_calls(path.read_text(encoding="utf-8", errors="replace"))
    for entry in result.entries:
        calls = python_calls((root / entry.path).read_text(encoding="utf-8")) - {entry.id}
        used |= calls
    return [
        Problem("unused", "warning", e.path, f"{e.id} is used by no app, pipeline or function")
        for e in result.entries
        if e.id not in used
    ]
