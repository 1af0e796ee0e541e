"""``fn vm down --stale``: which recorded VMs count as left behind by a killed run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from meshagents.testbed.vm import machine


def record(base: Path, name: str, owner: int) -> None:
    d = base / name
    d.mkdir(parents=True)
    (d / "vm.json").write_text(json.dumps({"name": name, "owner_pid": owner}))


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_only_vms_whose_owner_is_gone_are_stale(tmp_path: Path) -> None:
    runs = tmp_path / "state-vm"
    fixture = tmp_path / "meshagents-vm-abc"
    record(runs, "mine", 0)  # ./fn vm up: nobody's, kept until down
    record(runs, "alive", os.getpid())
    record(fixture, "gone", dead_pid())
    record(tmp_path / "other-dir", "elsewhere", dead_pid())  # not a fixture directory: not looked at
    assert machine.stale(tmp=tmp_path, base=runs) == [("gone", fixture)]


def test_an_old_record_without_an_owner_loads_and_is_not_stale(tmp_path: Path) -> None:
    record(tmp_path / "runs", "old", 0)
    data = json.loads((tmp_path / "runs" / "old" / "vm.json").read_text())
    data.pop("owner_pid")
    (tmp_path / "runs" / "old" / "vm.json").write_text(json.dumps(data))
    assert machine.stale(tmp=tmp_path, base=tmp_path / "runs") == []
