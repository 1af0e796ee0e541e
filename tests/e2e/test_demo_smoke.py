"""``./fn demo --smoke`` as an operator would run it: up, one command through Matrix, down."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from meshagents.state import project_root
from meshagents.testbed.rig.netns import private_routes
from tests.e2e.conftest import require_rig_tools, root_netns_snapshot

pytestmark = [pytest.mark.e2e, pytest.mark.root]


@pytest.mark.timeout(420)
def test_demo_smoke_round_trip_and_clean_teardown() -> None:
    require_rig_tools()
    before = root_netns_snapshot()
    proc = subprocess.run(
        [sys.executable, "-m", "meshagents.runtime.cli", "demo", "--smoke"],
        cwd=project_root(),
        capture_output=True,
        text=True,
        timeout=400,
        check=False,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    rtts = [int(m) for m in re.findall(r"round trip \((?:first|warm)\) (\d+) ms", out)]
    assert len(rtts) == 2, out[-3000:]
    assert "]: ok'" in out and "demo smoke: OK" in out
    after = root_netns_snapshot()
    # others' tests (and rigs) run on this machine too: only what this run made must be gone
    run = re.search(r"rig: run ([0-9a-f]{6})", out)
    assert run, out[-2000:]
    ours = {ns for ns in after.netns if run.group(1) in ns}
    assert not ours, f"namespaces left behind: {ours}"
    new_routes = after.routes - before.routes
    # the rig gives the root namespace no route at all (others' tests may add 198.18.x ones)
    assert not [r for r in new_routes if " dev r" in r], new_routes
    assert not private_routes("\n".join(new_routes)), new_routes
