"""The bus contract's builders and parsers: every content round-trips, the parsers
never raise on any JSON, and what the device builds is what the bot reads."""

from __future__ import annotations

import unicodedata
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshagents.apps.agents_and_robots.shell import result_from_content
from meshagents.apps.device_agent import replies
from meshagents.apps.device_agent.pipeline import Outcome, approval_ids, envelope_of
from meshagents.bus import (
    APPROVAL_REQUEST_KEY,
    LIVE_KEY,
    RESULT_KEY,
    Attachment,
    EnvelopeEvent,
    LiveMarker,
    ResultEvent,
    RotationEvent,
    StatusEvent,
    approval_request,
    approval_request_fields,
    carried_result,
)
from meshagents.trust.approval import Binding, make_binding

pytestmark = pytest.mark.unit

text = st.text(max_size=40).map(lambda s: unicodedata.normalize("NFC", s))
ident = st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9_.:\-]{0,40}\Z")
event_id = ident.map(lambda s: "$" + s)
ints = st.integers(-(2**31), 2**31)
json_values = st.recursive(
    st.none() | st.booleans() | ints | text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4),
    max_leaves=12,
)
envelopes = st.dictionaries(st.sampled_from(["request_id", "capability", "approval", "args", "nonce"]),
                            json_values, max_size=5)


@given(envelopes, st.none() | event_id, st.none() | event_id)
def test_envelope_event_round_trip(env: dict[str, Any], reply_to: str | None, hint: str | None) -> None:
    event = EnvelopeEvent(env, reply_to, hint)
    assert EnvelopeEvent.from_content(event.to_content()) == event
    content = event.to_content()
    assert envelope_of(content) == env
    approval = env.get("approval")
    assert approval_ids(content) == (approval if isinstance(approval, str) and approval else None, hint)


def test_envelope_event_lenient_reading() -> None:
    bare = {"request_id": "r1", "capability": "fs.read"}
    assert EnvelopeEvent.from_content(bare) == EnvelopeEvent(bare)  # --replay-test takes a bare envelope
    assert EnvelopeEvent.from_content("junk").envelope == "junk"  # the verifier refuses it
    odd = EnvelopeEvent.from_content(
        {"envelope": {}, "reply_to": "not-an-event", "approval_request_event": 3}
    )
    assert odd.reply_to is None and odd.approval_request_event is None and odd.get("request_id") is None


attachments = st.none() | st.builds(Attachment, text, st.integers(0, 2**40), st.integers(0, 2**40),
                                    st.from_regex(r"\A[0-9a-f]{64}\Z"))
results = st.builds(
    ResultEvent,
    request_id=ident,
    device_id=text,
    status=st.sampled_from(["ok", "error", "rejected_nonce", "rejected_approval"]),
    exit_code=st.none() | ints,
    output=text,
    truncated=st.booleans(),
    audit_seq=st.none() | st.integers(1, 2**40),
    duration_ms=st.integers(0, 2**31),
    reason=text,
    capability=text,
    attachment=attachments,
)


@given(results)
def test_result_event_round_trip(result: ResultEvent) -> None:
    assert ResultEvent.from_content(result.to_content()) == result


@given(st.builds(StatusEvent, text, st.sampled_from(["ok", "degraded"]), st.none() | st.integers(0, 2**45),
                 text, st.sampled_from([None, "bwrap", "weak"])))
def test_status_event_round_trip(status: StatusEvent) -> None:
    assert StatusEvent.from_content(status.to_content()) == status


@given(
    st.dictionaries(text, json_values, max_size=4),
    st.none() | st.dictionaries(text, json_values, max_size=3),
)
def test_rotation_event_round_trip(statement: dict[str, Any], manifest: dict[str, Any] | None) -> None:
    event = RotationEvent(statement, manifest)
    assert RotationEvent.from_content(event.to_content()) == event


@given(ident, st.sampled_from(["running", "final"]))
def test_live_marker_round_trip(rid: str, state: str) -> None:
    marker = LiveMarker(rid, state)
    assert LiveMarker.from_content({"body": "x", LIVE_KEY: marker.to_json()}) == marker


@settings(max_examples=300)
@given(json_values)
def test_parsers_never_raise(content: Any) -> None:
    EnvelopeEvent.from_content(content)
    for parse in (ResultEvent.from_content, StatusEvent.from_content, RotationEvent.from_content,
                  LiveMarker.from_content, approval_request_fields):
        parse(content)
    if isinstance(content, dict):
        result_from_content(content, "dev", 1.0)


def test_refusals_without_the_parts_they_need() -> None:
    assert ResultEvent.from_content({"request_id": "", "status": "ok"}) is None
    assert ResultEvent.from_content({"request_id": "r" * 129, "status": "ok"}) is None
    assert ResultEvent.from_content({"request_id": "r", "status": 1}) is None
    assert StatusEvent.from_content({"state": 1}) is None
    odd_status = StatusEvent.from_content({"state": "ok", "ts": True, "sandbox": "none"})
    assert odd_status == StatusEvent("", "ok", None)
    assert RotationEvent.from_content({"statement": "x"}) is None
    assert LiveMarker.from_content({LIVE_KEY: {"request_id": 1, "state": "final"}}) is None


def _outcome(status: str = "ok", output: str = "hello\n") -> Outcome:
    reason = "cancelled" if status != "ok" else "ok"
    return Outcome(status, reason, "req-1", "dev-1", "shell.exec.ls", 0, output, False, 7, 12)


def test_what_the_device_builds_the_bot_reads() -> None:
    sent = replies.SentFile("output-req-1.txt", 10, 20, "ab" * 32)
    content = replies.result_content(_outcome(), 16_000, sent)
    parsed = ResultEvent.from_content(content)
    assert parsed is not None and parsed.attachment == Attachment("output-req-1.txt", 10, 20, "ab" * 32)
    assert parsed.request_id == "req-1" and parsed.audit_seq == 7 and parsed.capability == "shell.exec.ls"
    failed = result_from_content(replies.result_content(_outcome("error", ""), 16_000), "dev", 5.0)
    assert failed is not None and failed.status == "error" and failed.reason == "cancelled"
    status = StatusEvent.from_content(replies.status_content("dev-1", "degraded", "mesh down", 2.5,
                                                             sandbox="weak"))
    assert status == StatusEvent("dev-1", "degraded", 2500, "mesh down", "weak")


def test_approval_request_carries_the_trust_binding() -> None:
    binding = make_binding(
        approval_id="K309X1", request_id="req-1", device_id="dev-1", capability="fs.write",
        args={"path": "/tmp/a", "content": "x"}, deadline=2_000_000_000, requester="@op:hs",
    )
    content = approval_request(binding, {"path": "/tmp/a", "content": "x"}, device="home")
    fields = approval_request_fields(content)
    assert fields is not None and fields["device"] == "home" and fields["binding"] == binding.digest
    assert Binding.from_json(content[APPROVAL_REQUEST_KEY]) == binding  # what the device's check reads
    plain = approval_request(None, {}, device="home", text="approval needed")
    assert plain["body"] == "approval needed" and plain[APPROVAL_REQUEST_KEY] == {"device": "home"}


def test_status_time_round_trips_from_the_agent_to_the_bot_in_seconds() -> None:
    # The agent writes ms (as Matrix does); the bot reads seconds: one conversion, in the contract.
    status = StatusEvent.from_content(replies.status_content("dev", "ok", "", now=1_700_000_000.25))
    assert status is not None and status.at_s == pytest.approx(1_700_000_000.25, abs=0.001)


def test_a_result_carried_by_a_notice() -> None:
    """The agent's answer carries its result (RESULT_KEY); only an m.notice's counts."""
    result = ResultEvent("r1", "dev", "ok", output="hi").to_content()
    notice = {"msgtype": "m.notice", "body": "x [r1]: ok", RESULT_KEY: result}
    assert carried_result(notice) == result
    assert ResultEvent.from_content(carried_result(notice)) == ResultEvent("r1", "dev", "ok", output="hi")
    assert carried_result({**notice, "msgtype": "m.text"}) is None  # an operator's text is never a result
    assert carried_result({"msgtype": "m.notice", "body": "x"}) is None
    assert carried_result({"msgtype": "m.notice", RESULT_KEY: "not a dict"}) is None
    assert carried_result(None) is None
