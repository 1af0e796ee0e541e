"""The agent's pipeline without Matrix: every status, the audit entries, the fs.write
path, replays across a restart, interrupted requests, and the --replay-test CLI."""

from __future__ import annotations

import json
import time
import unicodedata
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nacl.signing import SigningKey

from meshagents.apps.device_agent.__main__ import main
from meshagents.apps.device_agent.capabilities.base import Context
from meshagents.apps.device_agent.pipeline import ApprovalEvents, Pipeline
from meshagents.trust.approval import make_binding, request_content
from meshagents.trust.models import Envelope
from tests.testbed.agent_rig import Rig

pytestmark = pytest.mark.unit

CTX = Context(sandbox=False)


def test_golden_ls(rig: Rig, pipe: Pipeline) -> None:
    out = pipe.process(
        rig.content("shell.exec.ls", {"argv": ["ls", str(rig.files)]}, reply_to="$cmd"), None, CTX
    )
    assert out.status == "ok", out
    assert "hello.txt" in out.output and out.exit_code == 0 and out.reply_to == "$cmd"
    kinds = [(e.kind, e.status) for e in pipe.audit.entries()]
    assert kinds == [("intent", "started"), ("outcome", "ok")]
    assert pipe.audit.verify().ok


def _status(
    pipe: Pipeline, content: dict[str, Any], approvals: ApprovalEvents | None = None, **kw: Any
) -> str:
    before = len(pipe.audit.entries())
    out = pipe.process(content, approvals, CTX, **kw)
    entries = pipe.audit.entries()[before:]
    if out.status != "ok":
        # a refusal is one event entry and nothing ran (no intent)
        assert [(e.kind, e.status) for e in entries] == [("event", out.status)], entries
    return out.status


def test_rejected_signature(rig: Rig, pipe: Pipeline) -> None:
    content = rig.content("shell.exec.ls", {"argv": ["ls", str(rig.files)]})
    content["envelope"]["args"]["argv"] = ["ls", "/"]
    assert _status(pipe, content) == "rejected_signature"
    stranger = rig.content("shell.exec.ls", {"argv": ["ls", str(rig.files)]}, key=SigningKey.generate())
    assert _status(pipe, stranger) == "rejected_signature"
    assert _status(pipe, {"envelope": "nope"}) == "rejected_signature"


def test_rejected_device(rig: Rig, pipe: Pipeline) -> None:
    content = rig.content("shell.exec.ls", {"argv": ["ls"]}, device_id="dev-other")
    assert _status(pipe, content) == "rejected_device"


def test_rejected_expired_never_runs_late(rig: Rig, pipe: Pipeline) -> None:
    marker = rig.writable / "late"
    content = rig.content(
        "shell.exec.sh", {"argv": ["sh", "-c", f"touch {marker}"]}, ttl_s=60, now=int(time.time()) - 600
    )
    assert _status(pipe, content) == "rejected_expired"
    assert not marker.exists()


def test_rejected_nonce_also_after_restart(rig: Rig, pipe: Pipeline) -> None:
    content = rig.content("shell.exec.echo", {"argv": ["echo", "once"]})
    assert _status(pipe, content) == "ok"
    assert _status(pipe, content) == "rejected_nonce"
    pipe.close()
    again = Pipeline(rig.config)
    try:
        assert _status(again, content) == "rejected_nonce"
        assert again.audit.verify().ok
    finally:
        again.close()


def test_rejected_capability_and_args(rig: Rig, pipe: Pipeline) -> None:
    assert _status(pipe, rig.content("shell.exec.rm", {"argv": ["rm", "-rf", "/"]})) == "rejected_capability"
    assert _status(pipe, rig.content("shell.exec.ls", {"argv": ["ls", "/etc"]})) == "rejected_args"
    assert _status(pipe, rig.content("fs.read", {"path": "/etc/shadow"})) == "rejected_args"
    assert _status(pipe, rig.content("shell.exec.ls", {"argv": ["/bin/../bin/sh"]})) == "rejected_args"


def _events(
    rig: Rig,
    env: dict[str, Any],
    *,
    sender: str | None = None,
    verified: bool = True,
    device_id: str | None = None,
    capability: str | None = None,
    key: str = "👍",
    r_sender: str = "@bot:localhost",
    body: str | None = None,
    between: list[dict[str, Any]] | None = None,
) -> ApprovalEvents:
    envelope = Envelope.model_validate(env)
    binding = make_binding(
        approval_id="abc123", request_id=envelope.request_id, device_id=device_id or rig.device_id,
        capability=capability or envelope.capability, args=envelope.args, deadline=int(time.time()) + 600,
        requester=rig.approvers[0],
    )
    content = request_content(binding, envelope.args)
    if body is not None:
        content["body"] = body
    request = {"event_id": "$R", "type": "m.room.message", "sender": r_sender, "content": content}
    approval = {
        "event_id": envelope.approval,
        "type": "m.reaction",
        "sender": sender or rig.approvers[0],
        "content": {"m.relates_to": {"rel_type": "m.annotation", "event_id": "$R", "key": key}},
    }
    return ApprovalEvents(approval=approval, approval_verified=verified, request=request,
                          request_verified=True, between=[] if between is None else between)


def test_approval_required_and_checked(rig: Rig, pipe: Pipeline) -> None:
    target = rig.writable / "note.txt"
    args = {"path": str(target), "content": "hi\n"}
    assert _status(pipe, rig.content("fs.write", args)) == "rejected_approval"
    env = rig.envelope("fs.write", args, approval="$A")
    ok_events = _events(rig, env)
    deny = {"event_id": "$D", "type": "m.reaction", "sender": rig.approvers[0], "verified": True,
            "content": {"m.relates_to": {"rel_type": "m.annotation", "event_id": "$R", "key": "👎"}}}
    cases = {
        "non-operator": ({"sender": "@mallory:localhost"}, "approval_not_approver"),
        "bot": ({"sender": "@bot:localhost"}, "approval_from_bot"),
        "unverified": ({"verified": False}, "approval_unverified"),
        "other device": ({"device_id": "dev-other"}, "binding_device"),
        "other capability": ({"capability": "fs.read"}, "binding_capability"),
        "thumbs down": ({"key": "👎"}, "approval_not_a_vote"),
        "look-alike R": ({"r_sender": "@dev:localhost"}, "request_not_from_bot"),
        "other text": ({"body": "approve fs.read?"}, "text_mismatch"),
        "denied first": ({"between": [deny]}, "approval_denied"),
    }
    for name, (kw, code) in cases.items():
        fresh = rig.envelope("fs.write", args, approval="$A", request_id=env["request_id"])
        out = pipe.process({"envelope": fresh}, _events(rig, fresh, **kw), CTX)
        assert out.status == "rejected_approval", name
        assert out.reason.startswith(code + ":"), (name, out.reason)
        assert pipe.audit.entries()[-1].detail.startswith(code), name
    # the approval event must be the one the signed envelope names
    named_other = rig.envelope("fs.write", args, approval="$B")
    assert _status(pipe, {"envelope": named_other}, _events(rig, env)) == "rejected_approval"
    assert not target.exists()
    out = pipe.process({"envelope": env}, ok_events, CTX)
    assert out.status == "ok", out
    assert target.read_text() == "hi\n"
    intent = [e for e in pipe.audit.entries() if e.kind == "intent"][-1]
    assert intent.approval == "$A"
    # the same approval under a fresh nonce and a new request id: spent
    again = rig.envelope("fs.write", args, approval="$A")
    out = pipe.process({"envelope": again}, _events(rig, again), CTX)
    assert out.status == "rejected_approval" and out.reason.startswith("approval_reused"), out
    # two checks that both passed before either began (a race): the transaction refuses one
    e1 = rig.envelope("fs.write", args, approval="$A2")
    e2 = rig.envelope("fs.write", args, approval="$A2", request_id=e1["request_id"])
    v1, v2 = pipe.check({"envelope": e1}, _events(rig, e1)), pipe.check({"envelope": e2}, _events(rig, e2))
    assert v1.ok and v2.ok
    assert pipe.begin(v1).ok
    lost = pipe.begin(v2)
    assert lost.status == "rejected_approval" and lost.reason.startswith("approval_reused"), lost


def test_fs_write_content_limits(rig: Rig, pipe: Pipeline) -> None:
    env = rig.envelope("fs.write", {"path": "/etc/passwd", "content": "x"}, approval="$A")
    assert _status(pipe, {"envelope": env}, _events(rig, env)) == "rejected_args"
    env = rig.envelope("fs.write", {"path": str(rig.writable / "a"), "content": 5}, approval="$A")
    assert _status(pipe, {"envelope": env}, _events(rig, env)) == "rejected_args"


def test_shell_metacharacters_are_plain(rig: Rig, pipe: Pipeline) -> None:
    words = ["a;b", "$(id)", "`id`", "x\ny", "|", "&&", "*", "$HOME"]
    out = pipe.process(rig.content("shell.exec.echo", {"argv": ["echo", *words]}), None, CTX)
    assert out.status == "ok"
    assert out.output == " ".join(words) + "\n"


def test_timeout_and_big_output(rig: Rig, pipe: Pipeline) -> None:
    out = pipe.process(
        rig.content("shell.exec.head", {"argv": ["head", "-c", "10000000", "/dev/zero"]}), None, CTX
    )
    assert out.status == "ok" and out.truncated
    assert "output truncated: 65536 of 10000000 bytes" in out.output
    rig.resign(
        serial=2, capabilities=[{"name": "shell.exec.sleep", "executables": ["/bin/sleep"], "timeout_s": 1}]
    )
    t0 = time.monotonic()
    out = pipe.process(rig.content("shell.exec.sleep", {"argv": ["/bin/sleep", "30"]}), None, CTX)
    assert out.status == "error" and "killed after 1 s" in out.reason
    assert time.monotonic() - t0 < 10
    assert pipe.audit.entries()[-1].status == "timeout"


def test_manifest_rollback_refuses_everything(rig: Rig, pipe: Pipeline) -> None:
    old = rig.manifest_path.read_text()
    rig.resign(serial=5)
    assert _status(pipe, rig.content("shell.exec.echo", {"argv": ["echo", "1"]})) == "ok"
    rig.manifest_path.write_text(old)  # serial 1 after 5: a rollback
    content = rig.content("shell.exec.echo", {"argv": ["echo", "2"]})
    out = pipe.process(content, None, CTX)
    assert out.status == "rejected_capability" and "manifest_serial_rollback" in out.reason


def test_interrupted_reported_once(rig: Rig, pipe: Pipeline) -> None:
    env = rig.envelope("shell.exec.echo", {"argv": ["echo", "x"]})
    verdict = pipe.begin(pipe.check({"envelope": env}))
    assert verdict.ok  # intent written, then "the agent died"
    found = pipe.interrupted()
    assert [e.request_id for e in found] == [env["request_id"]]
    assert pipe.interrupted() == found  # not announced yet: still to report
    pipe.mark_interrupted(found)
    assert pipe.interrupted() == []
    assert [e.request_id for e in pipe.audit.pending()] == [env["request_id"]]
    assert pipe.audit.verify().ok


def test_info_sensors_list_read(rig: Rig, pipe: Pipeline) -> None:
    info = pipe.process(rig.content("system.info", {}), None, CTX)
    assert info.status == "ok" and "uptime:" in info.output and "memory:" in info.output
    sensors = pipe.process(rig.content("sensors", {}), None, CTX)
    assert sensors.status == "ok" and sensors.output
    listing = pipe.process(rig.content("fs.list", {"path": str(rig.files)}), None, CTX)
    assert "hello.txt" in listing.output
    read = pipe.process(rig.content("fs.read", {"path": str(rig.files / "hello.txt")}), None, CTX)
    assert read.output == "hello from the device\n"
    (rig.files / "big").write_bytes(b"a" * 10000)
    big = pipe.process(rig.content("fs.read", {"path": str(rig.files / "big")}), None, CTX)
    assert big.truncated and "4096 of 10000" in big.output


def test_camera_refused_when_not_in_manifest(rig: Rig, pipe: Pipeline) -> None:
    assert _status(pipe, rig.content("camera.snapshot", {})) == "rejected_capability"


def test_replay_cli(rig: Rig, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "env.json"
    path.write_text(json.dumps(rig.content("shell.exec.echo", {"argv": ["echo", "replayed"]})))
    assert main(["--config", str(rig.config_path), "--replay-test", str(path)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["status"] == "ok" and out["output"] == "replayed\n" and out["decision"]["allowed"]
    assert main(["--config", str(rig.config_path), "--replay-test", str(path)]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["status"] == "rejected_nonce"


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    words=st.lists(
        st.text(st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1, max_size=40).filter(
            # canonical JSON takes NFC text only (a signed envelope refuses anything else)
            lambda w: not w.startswith("-") and unicodedata.normalize("NFC", w) == w
        ),
        min_size=1,
        max_size=6,
    )
)
def test_any_words_reach_the_program_verbatim(rig: Rig, pipe: Pipeline, words: list[str]) -> None:
    out = pipe.process(
        rig.content(
            "shell.exec.python3",
            {"argv": ["python3", "-c", "import sys; sys.stdout.write(repr(sys.argv[1:]))", *words]},
        ),
        None,
        CTX,
    )
    assert out.status == "ok", out
    assert out.output == repr(words)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_tampered_field_is_refused_and_nothing_runs(
    rig: Rig, pipe: Pipeline, data: st.DataObject
) -> None:
    marker = rig.writable / "tampered"
    content = rig.content("shell.exec.sh", {"argv": ["sh", "-c", f"touch {marker}"]})
    env = content["envelope"]
    key = data.draw(st.sampled_from(sorted(k for k in env if k != "signature")))
    value = data.draw(st.one_of(st.text(max_size=20), st.integers(), st.none()))
    if value == env[key]:
        return
    env[key] = value
    out = pipe.process(content, None, CTX)
    assert out.status.startswith("rejected_"), (key, value, out)
    assert not marker.exists()


def test_expired_manifest_refuses_everything(rig: Rig, pipe: Pipeline) -> None:
    now = int(time.time())
    rig.resign(serial=2, issued_at=now - 100, expires_at=now - 10)
    out = pipe.process(rig.content("shell.exec.echo", {"argv": ["echo", "x"]}), None, CTX)
    assert out.status == "rejected_capability" and "manifest expired" in out.reason


def test_manifest_from_another_operator_refuses_everything(rig: Rig, pipe: Pipeline) -> None:
    rig.operator = SigningKey.generate()  # a manifest signed by a key that is not the pinned one
    rig.resign(serial=3)
    out = pipe.process(rig.content("shell.exec.echo", {"argv": ["echo", "x"]}), None, CTX)
    assert out.status == "rejected_capability" and "manifest_invalid_signature" in out.reason
