"""A bench's kept output directories: each run makes one, and only the newest few of that
kind stay (an old one of another bench running beside it, or of another kind, is kept)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from meshagents.testbed import benchkit


def test_a_new_dir_and_only_the_newest_few_old_ones_stay(tmp_path: Path) -> None:
    old = time.time() - 2 * benchkit.PRUNE_AGE_S
    made = []
    for i in range(benchkit.KEEP_DIRS + 3):
        d = tmp_path / f"bench-x-trace-{i:02d}"
        d.mkdir()
        os.utime(d, (old + i, old + i))  # made in this order, long ago
        made.append(d)
    recent = tmp_path / "bench-x-trace-recent"
    recent.mkdir()  # another run's, just made: kept whatever the count
    other = tmp_path / "bench-y-trace-00"
    other.mkdir()
    os.utime(other, (old, old))
    new = benchkit.kept_dir("bench-x-trace-", parent=tmp_path)
    assert new.is_dir() and new.name.startswith("bench-x-trace-") and new not in made
    left = sorted(p.name for p in tmp_path.glob("bench-x-trace-*"))
    # the new one, the recent one and the newest old ones: KEEP_DIRS with the new one
    kept_old = [d.name for d in made[-(benchkit.KEEP_DIRS - 2) :]]
    assert left == sorted([new.name, recent.name, *kept_old])
    assert other.is_dir()
