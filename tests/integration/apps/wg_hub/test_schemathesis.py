"""Schemathesis against the running hub's OpenAPI (operator and public apps): no 5xx on any input.

Runs the schemathesis CLI inside the hub namespace against the live service (real
WireGuard underneath), bounded to a few dozen examples per operation. ``/api/events``
is left out: it is an endless stream by design (its ``limit`` is tested elsewhere).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.testbed.hub_rig import OPERATOR_PORT, PUBLIC, PUBLIC_PORT, HubRig, nsenter

pytestmark = [pytest.mark.integration, pytest.mark.root]

EXAMPLES = 10


def schemathesis(rig: HubRig, base: str, tmp: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("schemathesis")
    argv = [
        *nsenter(rig.hub_ns), str(exe), "run", f"{base}/openapi.json",
        "--checks", "not_a_server_error", "--max-examples", str(EXAMPLES),
        "--phases", "examples,coverage,fuzzing", "--generation-database", "none",
        "--request-timeout", "20", "--seed", "1", "--no-color", *extra,
    ]  # fmt: skip
    return subprocess.run(argv, cwd=tmp, env=rig.env(rig.state), capture_output=True, text=True, timeout=300)


def test_public_app_no_5xx(hub_rig: HubRig, tmp_path: Path) -> None:
    proc = schemathesis(hub_rig, f"http://{PUBLIC}:{PUBLIC_PORT}", tmp_path)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    # No failure of the server-error check; schemathesis' warnings are allowed here: the
    # content-addressed /install files answer 404 to made-up hashes, which is their job.
    assert "FAILURES" not in proc.stdout, proc.stdout[-3000:]
    assert "No issues found" in proc.stdout or "=== WARNINGS ===" in proc.stdout, proc.stdout[-3000:]


def test_operator_app_no_5xx(hub_rig: HubRig, tmp_path: Path) -> None:
    proc = schemathesis(
        hub_rig,
        f"http://127.0.0.1:{OPERATOR_PORT}",
        tmp_path,
        "--header",
        f"Authorization: Bearer {hub_rig.api_token}",
        "--exclude-path",
        "/api/events",
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    log = hub_rig.log_text()
    assert "internal error" not in log and "unexpected error" not in log, log[-3000:]
