"""The approval binding and the device's approval check (pure): every rule of
``meshagents.trust.approval`` refuses with its stable code, and hypothesis shows that
no change of device, capability, arguments, request id or text passes under one approval."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nacl.signing import SigningKey

from meshagents.trust import envelope as env_mod
from meshagents.trust.approval import (
    APPROVAL_REQUEST_KEY,
    ApprovalVerdict,
    Binding,
    check_approval,
    command_vote,
    make_binding,
    reaction_vote,
    render_request,
    request_content,
)
from meshagents.trust.models import Envelope, Manifest

pytestmark = pytest.mark.unit

OP = "@alice:hub"
BOT = "@bot:hub"
NOW = 1_800_000_000
CONTROLLER = SigningKey.generate()
DEVICE_KEY = "A" * 43 + "="


def manifest(**kw: Any) -> Manifest:
    body: dict[str, Any] = {
        "device_id": "dev-1", "device_name": "dev-1", "device_key": DEVICE_KEY, "wg_public_key": DEVICE_KEY,
        "mesh_address": "10.42.0.10", "matrix_user": "@dev-1:hub", "approvers": [OP],
        "controllers": [DEVICE_KEY], "bot_users": [BOT],
        "capabilities": [{"name": "fs.list"}, {"name": "fs.read"}], "serial": 1,
        "issued_at": NOW - 100, "expires_at": NOW + 86400, "operator_key": DEVICE_KEY,
    }  # fmt: skip
    body.update(kw)
    return Manifest.model_validate(body)


def envelope(capability: str = "fs.list", args: dict[str, Any] | None = None, **kw: Any) -> Envelope:
    kw.setdefault("request_id", "req-1")
    return env_mod.sign(CONTROLLER, device_id=kw.pop("device_id", "dev-1"), capability=capability,
                        args={"path": "/srv"} if args is None else args, approval="$A", now=NOW, **kw)


def binding(env: Envelope, **kw: Any) -> Binding:
    fields: dict[str, Any] = {
        "approval_id": "k3x9qa", "request_id": env.request_id, "device_id": env.device_id,
        "capability": env.capability, "args": env.args, "deadline": NOW + 600, "requester": OP,
    }  # fmt: skip
    fields.update(kw)
    return make_binding(**fields)


def request(b: Binding, args: dict[str, Any], sender: str = BOT, event_id: str = "$R") -> dict[str, Any]:
    content = request_content(b, args)
    return {"event_id": event_id, "sender": sender, "type": "m.room.message", "content": content}


def reaction(key: str = "👍", on: str = "$R", sender: str = OP, event_id: str = "$A") -> dict[str, Any]:
    return {
        "event_id": event_id, "sender": sender, "type": "m.reaction", "verified": True,
        "content": {"m.relates_to": {"rel_type": "m.annotation", "event_id": on, "key": key}},
    }  # fmt: skip


def command(text: str, sender: str = OP, event_id: str = "$A") -> dict[str, Any]:
    return {"event_id": event_id, "sender": sender, "type": "m.room.message", "verified": True,
            "content": {"msgtype": "m.text", "body": text}}


def check(env: Envelope | None = None, **kw: Any) -> ApprovalVerdict:
    env = env or envelope()
    args: dict[str, Any] = {
        "envelope": env, "manifest": manifest(), "approval": reaction(), "approval_verified": True,
        "request": request(binding(env), env.args), "request_verified": True, "between": [], "now": NOW,
    }  # fmt: skip
    args.update(kw)
    return check_approval(**args)


def test_a_good_approval_passes() -> None:
    v = check()
    assert v.ok and v.code == "ok", v
    assert check(approval=command("!approve k3x9qa")).ok
    assert check(approval=reaction("👍🏽")).ok  # skin tones are the same vote


@pytest.mark.parametrize(
    ("kw", "code"),
    [
        ({"approval": None}, "approval_not_found"),
        ({"approval": reaction(event_id="$other")}, "approval_not_found"),
        ({"approval": reaction(sender=BOT)}, "approval_from_bot"),
        ({"approval": reaction(sender="@mallory:hub")}, "approval_not_approver"),
        ({"approval_verified": False}, "approval_unverified"),
        ({"approval": reaction("👎")}, "approval_not_a_vote"),
        ({"approval": command("!deny k3x9qa")}, "approval_not_a_vote"),
        ({"approval": command("please !approve k3x9qa")}, "approval_not_a_vote"),
        ({"request": None}, "request_not_found"),
        ({"manifest": manifest(bot_users=[])}, "request_not_from_bot"),
        ({"request_verified": False}, "request_unverified"),
        ({"approval": reaction(on="$elsewhere")}, "approval_other_request"),
        ({"approval": command("!approve zzzzzz")}, "approval_other_request"),
        ({"now": NOW + 601 + 30}, "approval_expired"),
        ({"approval": {**reaction(), "origin_server_ts": (NOW + 700) * 1000}}, "approval_expired"),
        ({"between": None}, "approval_history_unknown"),
        ({"between": [reaction("👎", event_id="$D")]}, "approval_denied"),
        ({"between": [command("!deny k3x9qa", event_id="$D")]}, "approval_denied"),
    ],
)
def test_each_rule_has_its_code(kw: dict[str, Any], code: str) -> None:
    v = check(**kw)
    assert not v.ok and v.code == code, v
    assert v.reason.startswith(code + ": ")


def test_look_alike_request_from_a_device_user() -> None:
    env = envelope()
    v = check(request=request(binding(env), env.args, sender="@dev-1:hub"))
    assert v.code == "request_not_from_bot", v


def test_capability_swap_under_one_approval() -> None:
    listed = envelope("fs.list")
    read = envelope("fs.read")  # same request id and args, other capability
    v = check(read, request=request(binding(listed), listed.args))
    assert v.code == "binding_capability", v


def test_denial_ignored_when_not_an_approver_or_unverified_or_after() -> None:
    assert check(between=[reaction("👎", sender="@mallory:hub", event_id="$D")]).ok
    assert check(between=[{**reaction("👎", event_id="$D"), "verified": False}]).ok
    assert check(between=[reaction("👎", on="$other", event_id="$D")]).ok  # on another request


def test_a_second_request_with_the_same_id_is_ambiguous() -> None:
    env = envelope()
    twin = request(binding(env, capability="fs.read"), env.args, event_id="$R2")
    assert check(between=[twin]).code == "approval_ambiguous"


def test_text_must_be_the_rendering() -> None:
    env = envelope()
    r = request(binding(env), env.args)
    r["content"]["body"] = r["content"]["body"].replace("/srv", "/etc")
    assert check(request=r).code == "text_mismatch"
    r = request(binding(env), env.args)
    r["content"]["formatted_body"] = "<p>approve <code>fs.list /srv</code>?</p>"
    assert check(request=r).code == "text_mismatch"
    r = request(binding(env), env.args)
    del r["content"]["formatted_body"]  # a client then shows the body, which matches
    assert check(request=r).ok


def test_binding_round_trip_and_rendering_names_everything() -> None:
    env = envelope()
    b = binding(env)
    assert Binding.from_json(b.to_json()) == b
    assert Binding.from_json({**b.to_json(), "deadline": "soon"}) is None
    text, html = render_request(b, env.args)
    for part in (b.device_id, b.capability, "/srv", b.approval_id, b.digest):
        assert part in text and part in html


def test_votes() -> None:
    assert reaction_vote("👍") is True and reaction_vote("👎🏿") is False and reaction_vote("🎉") is None
    assert command_vote(" !approve abc ") == (True, "abc") and command_vote("!deny abc") == (False, "abc")
    assert command_vote("!approve") is None and command_vote("!approve a b") is None


_ids = st.from_regex(r"[a-z0-9][a-z0-9-]{0,20}", fullmatch=True)
_values = st.one_of(st.text(max_size=40), st.integers(-5, 5), st.lists(st.text(max_size=8), max_size=3))
_args = st.dictionaries(st.sampled_from(["path", "argv", "n"]), _values, max_size=3)


@settings(max_examples=150, deadline=None)
@given(
    approved_args=_args,
    run_args=_args,
    approved_cap=st.sampled_from(["fs.list", "fs.read"]),
    run_cap=st.sampled_from(["fs.list", "fs.read"]),
    approved_rid=_ids,
    run_rid=_ids,
    approved_dev=st.sampled_from(["dev-1", "dev-2"]),
)
def test_no_swap_passes(
    approved_args: dict[str, Any], run_args: dict[str, Any], approved_cap: str, run_cap: str,
    approved_rid: str, run_rid: str, approved_dev: str,
) -> None:
    """Whatever was approved, an envelope passes only if it is exactly that request."""
    try:
        shown = envelope(approved_cap, approved_args, request_id=approved_rid)
        run = envelope(run_cap, run_args, request_id=run_rid)
    except Exception:  # args the canonical form refuses (non-NFC text): not an envelope at all
        return
    r = request(binding(shown, device_id=approved_dev), shown.args)
    v = check(run, request=r)
    same = (approved_args == run_args and approved_cap == run_cap and approved_rid == run_rid
            and approved_dev == "dev-1")
    assert v.ok == same, v


@settings(max_examples=100, deadline=None)
@given(st.text(min_size=1, max_size=30), st.integers(0, 200))
def test_any_text_edit_is_refused(insert: str, where: int) -> None:
    env = envelope()
    r = request(binding(env), env.args)
    body = r["content"]["body"]
    r["content"]["body"] = body[:where] + insert + body[where:]
    assert check(request=r).code == "text_mismatch"


def test_content_carries_the_binding() -> None:
    env = envelope()
    content = request_content(binding(env), env.args)
    assert content[APPROVAL_REQUEST_KEY]["binding"] == binding(env).digest
