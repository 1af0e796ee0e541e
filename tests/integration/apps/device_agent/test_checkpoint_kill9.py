"""kill -9 the agent's pipeline while it signs checkpoints, 50 times: the chain, the
checkpoint file and the manifest history stay verifiable, and nothing runs twice.

The child is the agent's own code over a real config (``Pipeline`` + ``Sealer`` from
meshagents/apps/device_agent, real envelopes signed by a controller key, real ``sh`` runs), with
``checkpoint_every: 1`` so that a checkpoint is written after every request: most
kills land in a request, some in a checkpoint (between the fsync'd record and the
chain entry that names it); every fifth kill is aimed there (the child says when the
record is durable), so a loaded machine cannot make the test miss that window. Like
the agent, the child never runs a request whose intent is already in the chain (the
Matrix client's handled-event record and the nonce store do that in the real process;
here the chain itself is the record).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from meshagents.functions.audit.device_audit_verify_chain import device_audit_verify_chain
from meshagents.trust.audit import AuditLog
from meshagents.trust.checkpoints import checkpoints_path
from meshagents.trust.signing import public_b64
from tests.testbed.agent_rig import make_rig
from tests.testbed.host import ROOT

pytestmark = pytest.mark.integration

CHILD = r"""
import json, sys
from pathlib import Path
from meshagents.apps.device_agent.capabilities.base import Context
from meshagents.apps.device_agent.config import load
from meshagents.apps.device_agent.pipeline import Pipeline
from meshagents.apps.device_agent.sealing import Sealer
from meshagents.trust.keystore import DEVICE_KEY, FileKeyStore, load_signing_key

config = load(Path(sys.argv[1]))
pipeline = Pipeline(config)
sealer = Sealer(config, pipeline.audit, pipeline.manifest,
                lambda: load_signing_key(DEVICE_KEY, FileKeyStore(config.keys_dir)))
ctx = Context(sandbox=False, snapshots_dir=config.snapshots_dir)
if sys.argv[3] == "aim":
    # An aimed round: after the checkpoint record is durable and before the chain entry
    # naming it, say so and wait for the kill (the append itself is the real one).
    import time
    from meshagents.trust.checkpoints import CheckpointFile
    real_append = CheckpointFile.append
    def append_then_wait(self, record):
        real_append(self, record)
        print("in-checkpoint", flush=True)
        time.sleep(30)
    CheckpointFile.append = append_then_wait
started = {e.request_id for e in pipeline.audit.entries() if e.kind == "intent"}
print("ready", flush=True)
for line in Path(sys.argv[2]).read_text().splitlines():
    content = json.loads(line)
    if content["envelope"]["request_id"] in started:
        continue  # ran (or was interrupted) before the kill: never again
    pipeline.process(content, None, ctx)
    sealer.maybe()
print("done", flush=True)
"""

ROUNDS = 50
PER_ROUND = 60
AIM_EVERY = 5  # every 5th kill is aimed inside a checkpoint; the others land at random


def test_kill9_while_checkpointing_fifty_times(tmp_path: Path, state_dir: Path) -> None:
    rig = make_rig(tmp_path / "dev", checkpoint_every=1)
    ran = rig.writable / "ran"
    envelopes = tmp_path / "envelopes.jsonl"
    rng = random.Random()
    mid_checkpoint = 0
    total = 0
    for round_ in range(ROUNDS):
        with envelopes.open("w") as f:
            for i in range(PER_ROUND):
                rid = f"k{round_:02d}x{i:03d}"
                args = {"argv": ["sh", "-c", f"echo {rid} >> {ran}"]}
                f.write(json.dumps(rig.content("shell.exec.sh", args, request_id=rid)) + "\n")
        aimed = round_ % AIM_EVERY == AIM_EVERY - 1
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(rig.config_path), str(envelopes), "aim" if aimed else "random"],
            stdout=subprocess.PIPE,
            cwd=ROOT,
            env=dict(os.environ, PYTHONPATH=str(ROOT)),
        )
        try:
            assert child.stdout is not None
            assert child.stdout.readline().strip() == b"ready"
            if aimed:
                assert child.stdout.readline().strip() == b"in-checkpoint"
            else:
                time.sleep(rng.uniform(0.0, 0.4))
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait(timeout=30)

        # the catalog verifier, over the agent's config: chain + checkpoint file + key schedule
        out = device_audit_verify_chain(device=rig.device_id, config=[rig.config_path])
        report = out["devices"][rig.device_id]
        assert report["ok"], report
        assert report["key_schedule"] == [public_b64(rig.device)]  # the manifest history was kept
        with AuditLog(rig.config.audit_path) as log:
            assert log.head()[0] >= total
            total = log.head()[0]
            named = {d for _s, d in log.checkpoint_events()}
        records = [json.loads(x) for x in checkpoints_path(rig.config.audit_path).read_text().splitlines()]
        last = records[-1] if records else None
        if last is not None and f"checkpoint #{last['index']} at seq {last['seq']}" not in named:
            mid_checkpoint += 1  # killed after the record, before the chain entry naming it
        if report["torn_checkpoint"]:
            mid_checkpoint += 1
        runs = Counter(ran.read_text().split()) if ran.exists() else Counter()
        assert not [r for r, n in runs.items() if n > 1], "a request ran twice"
    assert total > ROUNDS
    print(f"{mid_checkpoint} of {ROUNDS} kills landed inside a checkpoint; chain head {total}")
    assert mid_checkpoint >= ROUNDS // AIM_EVERY, "an aimed kill did not land inside a checkpoint"
