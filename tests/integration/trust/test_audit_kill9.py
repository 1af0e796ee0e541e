"""kill -9 a process appending to the audit chain, 50 times: the chain always verifies."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from meshagents.state import project_root
from meshagents.trust.audit import AuditLog

pytestmark = pytest.mark.integration

CHILD = r"""
import sys, time, os
from pathlib import Path
from meshagents.trust.audit import AuditLog
log = AuditLog(Path(sys.argv[1]), device_id="dev-kill")
tag = os.getpid()
print("ready", flush=True)
i = 0
while True:
    rid = f"r{tag}-{i}"
    log.append_intent(rid, "shell.exec.ls", {"argv": ["ls", str(i)]}, nonce=f"n{tag:08d}x{i:010d}")
    time.sleep(0.002)  # the "capability" runs: a kill here leaves an intent without outcome
    log.append_outcome(rid, "shell.exec.ls", "ok", detail=str(i))
    i += 1
"""

ROUNDS = 50


def test_kill9_fifty_times(tmp_path: Path) -> None:
    path = tmp_path / "dev-kill.sqlite"
    rng = random.Random()
    interrupted: set[str] = set()
    total_before = 0
    for _round in range(ROUNDS):
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(path)],
            stdout=subprocess.PIPE,
            cwd=project_root(),
            env=dict(os.environ, PYTHONPATH=str(project_root())),
        )
        try:
            assert child.stdout is not None
            assert child.stdout.readline().strip() == b"ready"
            time.sleep(rng.uniform(0.0, 0.06))
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait(timeout=30)
        with AuditLog(path) as log:
            report = log.verify()
            assert report.ok, report
            assert report.head_seq >= total_before
            total_before = report.head_seq
            pending = {e.request_id for e in log.pending()}
            new = pending - interrupted
            # At most the request in flight at the kill is open, and it is the chain's last entry.
            assert len(new) <= 1, new
            if new:
                last = log.entries()[-1]
                assert last.kind == "intent" and last.request_id in new
            interrupted |= new
            intents = sum(1 for e in log.entries() if e.kind == "intent")
            assert log.nonces.count() == intents  # nonce and intent always committed together
    assert interrupted, "no kill landed between an intent and its outcome in 50 rounds"
    assert total_before > ROUNDS
