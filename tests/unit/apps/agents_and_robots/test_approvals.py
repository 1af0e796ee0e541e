"""The approval state machine: each transition, its effects, the rules on who counts."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Container

import pytest

from meshagents.apps.agents_and_robots.approvals import (
    ApprovalBook,
    State,
    Transition,
    Vote,
    pending_text,
    preview_args,
    reaction_vote,
    vote_from_command,
    vote_from_reaction,
)
from meshagents.apps.agents_and_robots.commands import Command, parse
from meshagents.trust.approval import render_request

pytestmark = pytest.mark.unit

BOT = "@bot:hub"
OP = "@op:hub"
OP2 = "@op2:hub"
EVE = "@eve:hub"
OPS = frozenset({OP, OP2})
T0 = 1_800_000_000.0


def ids() -> Callable[[Container[str]], str]:
    counter = itertools.count()
    return lambda taken: f"R{next(counter):05d}"


def book(**kw: object) -> ApprovalBook:
    return ApprovalBook(bot_user_id=BOT, new_id=ids(), **kw)  # type: ignore[arg-type]


def opened(b: ApprovalBook, *, event: str = "$req", requester: str = OP) -> str:
    t = b.open(
        device="home-wsl",
        capability="fs.write",
        args={"path": "/tmp/x", "content": "hi"},
        requester=requester,
        now=T0,
        room_id="!dev:hub",
        command_event_id="$cmd",
    )
    assert t.request is not None
    b.posted(t.request.id, event)
    return t.request.id


def react(
    sender: str,
    key: str = "👍",
    *,
    to: str = "$req",
    ev: str = "$r1",
    at: float = T0 + 10,
    verified: bool = True,
    encrypted: bool = True,
) -> Vote:
    v = vote_from_reaction(
        sender=sender, key=key, reacts_to=to, event_id=ev, at=at, verified=verified, encrypted=encrypted
    )
    assert v is not None
    return v


def command_vote(
    text: str, sender: str, *, ev: str = "$c1", at: float = T0 + 10, verified: bool = True
) -> Vote:
    cmd = parse(text)
    assert isinstance(cmd, Command)
    v = vote_from_command(cmd, sender=sender, event_id=ev, at=at, verified=verified, encrypted=True)
    assert v is not None
    return v


def test_open_posts_request_and_waiting_notice() -> None:
    b = book()
    t = b.open(
        device="home-wsl",
        capability="fs.write",
        args={"path": "/tmp/x", "content": "hi"},
        requester=OP,
        now=T0,
        command_event_id="$cmd",
    )
    assert t.outcome == "opened" and t.request is not None and t.request.state is State.PENDING
    assert t.request.expires_at == T0 + 3600
    req_msg, waiting = t.effects
    assert (req_msg.kind, req_msg.room) == ("post", "approvals")
    for part in (
        t.request.id,
        "home-wsl",
        "fs.write",
        '"path": "/tmp/x"',
        OP,
        "👍",
        f"!approve {t.request.id}",
    ):
        assert part in req_msg.text
    assert "<pre><code>" in req_msg.html
    assert (waiting.room, waiting.reply_to) == ("device", "$cmd")
    assert waiting.text.startswith(f"waiting for approval {t.request.id}")
    assert b.pending() == [t.request]


def test_html_is_escaped() -> None:
    b = book()
    t = b.open(
        device="<b>x</b>", capability="fs.write", args={"content": "<script>"}, requester="@a<:hub", now=T0
    )
    html = t.effects[0].html
    assert "<script>" not in html and "&lt;script&gt;" in html and "<b>x</b>" not in html


def test_thumbs_up_from_verified_operator_approves_and_dispatches() -> None:
    b = book()
    rid = opened(b)
    t = b.vote(react(OP, ev="$thumb"), operators=OPS)
    assert t.outcome == "approved" and t.request is not None
    assert (t.request.state, t.request.decided_by, t.request.decision_event_id) == (
        State.APPROVED,
        OP,
        "$thumb",
    )
    assert t.request.decided_at == T0 + 10
    kinds = [(e.kind, e.room) for e in t.effects]
    assert kinds == [("post", "approvals"), ("post", "device"), ("dispatch", "device")]
    assert all(e.request_id == rid for e in t.effects)
    assert b.pending() == []


@pytest.mark.parametrize("key", ["👍", "👍️", "👍🏽", " 👍🏿 ", "✅", "✅️"])
def test_thumbs_up_variants(key: str) -> None:
    assert reaction_vote(key) is True


@pytest.mark.parametrize("key", ["👎", "👎🏻", "👎️", "❌", "❌️"])
def test_thumbs_down_variants(key: str) -> None:
    assert reaction_vote(key) is False


@pytest.mark.parametrize("key", ["❤️", "+1", "👍👍", "", "✅✅", "❎"])
def test_other_reactions_are_not_votes(key: str) -> None:
    assert reaction_vote(key) is None
    assert (
        vote_from_reaction(
            sender=OP, key=key, reacts_to="$req", event_id="$e", at=T0, verified=True, encrypted=True
        )
        is None
    )


def test_thumbs_down_denies() -> None:
    b = book()
    opened(b)
    t = b.vote(react(OP2, "👎", ev="$down"), operators=OPS)
    assert t.outcome == "denied" and t.request is not None and t.request.state is State.DENIED
    assert t.request.decision_event_id == "$down"
    assert not any(e.kind == "dispatch" for e in t.effects)
    assert "nothing ran" in t.effects[1].text


def test_command_votes() -> None:
    b = book()
    rid = opened(b)
    t = b.vote(command_vote(f"!approve {rid.lower()}", OP, ev="$cmdvote"), operators=OPS)
    assert t.outcome == "approved" and t.request is not None and t.request.decision_event_id == "$cmdvote"
    b2 = book()
    rid2 = opened(b2)
    assert b2.vote(command_vote(f"!deny {rid2}", OP2), operators=OPS).outcome == "denied"
    assert (
        vote_from_command(
            Command("status", None, {}), sender=OP, event_id="$e", at=T0, verified=True, encrypted=True
        )
        is None
    )


def test_plain_and_encrypted_reactions_both_count_by_default() -> None:
    b = book()
    opened(b)
    assert b.vote(react(OP, encrypted=False), operators=OPS).outcome == "approved"


def test_require_encrypted() -> None:
    b = book(require_encrypted=True)
    opened(b)
    t = b.vote(react(OP, encrypted=False), operators=OPS)
    assert (t.outcome, t.reason) == ("ignored", "unencrypted")
    assert b.vote(react(OP, encrypted=True, ev="$r2"), operators=OPS).outcome == "approved"


def test_bot_never_counts_and_is_silent() -> None:
    b = book()
    opened(b)
    ops_with_bot = OPS | {BOT}  # even if misconfigured as an operator
    t = b.vote(react(BOT), operators=ops_with_bot)
    assert (t.outcome, t.reason, t.effects) == ("ignored", "bot", ())
    t = b.vote(command_vote("!approve R00000", BOT), operators=ops_with_bot)
    assert (t.outcome, t.reason) == ("ignored", "bot")
    assert b.pending()


def test_non_operator_is_ignored_with_one_alert() -> None:
    b = book()
    rid = opened(b)
    t = b.vote(react(EVE), operators=OPS)
    assert (t.outcome, t.reason) == ("ignored", "not_operator")
    (alert,) = t.effects
    assert alert.kind == "alert" and alert.room == "approvals" and EVE in alert.text and rid in alert.text
    t = b.vote(react(EVE, "👎", ev="$r2"), operators=OPS)
    assert (t.outcome, t.reason, t.effects) == ("ignored", "not_operator", ())  # alert once per sender
    assert b.get(rid) is not None and b.get(rid).state is State.PENDING  # type: ignore[union-attr]


def test_unverified_operator_device_is_ignored_then_can_vote_verified() -> None:
    b = book()
    opened(b)
    t = b.vote(react(OP, verified=False), operators=OPS)
    assert (t.outcome, t.reason) == ("ignored", "unverified_device")
    assert "not verified" in t.effects[0].text
    t = b.vote(react(OP, verified=True, ev="$r2"), operators=OPS)
    assert t.outcome == "approved" and t.request is not None and t.request.decision_event_id == "$r2"


def test_reaction_on_another_event_is_ignored_silently() -> None:
    b = book()
    opened(b)
    t = b.vote(react(OP, to="$other"), operators=OPS)
    assert (t.outcome, t.reason, t.effects) == ("ignored", "unknown_request", ())


def test_unknown_id_by_command_gets_an_answer() -> None:
    b = book()
    opened(b)
    t = b.vote(command_vote("!approve ZZZZZZ", OP), operators=OPS)
    assert (t.outcome, t.reason) == ("ignored", "unknown_request")
    assert "no request ZZZZZZ" in t.effects[0].text


def test_reaction_before_posted_cannot_match() -> None:
    b = book()
    t = b.open(device="d", capability="fs.write", args={}, requester=OP, now=T0)
    assert t.request is not None
    assert b.vote(react(OP, to="$req"), operators=OPS).reason == "unknown_request"
    b.posted(t.request.id, "$req")
    b.posted(t.request.id, "$req")  # idempotent
    with pytest.raises(ValueError):
        b.posted(t.request.id, "$other")
    assert b.vote(react(OP, to="$req"), operators=OPS).outcome == "approved"


def test_first_decisive_vote_wins_and_terminal_never_changes() -> None:
    b = book()
    rid = opened(b)
    assert b.vote(react(OP2, "👎", ev="$d"), operators=OPS).outcome == "denied"
    before = b.get(rid)
    for v in (react(OP, ev="$a"), command_vote(f"!approve {rid}", OP), react(OP2, ev="$b")):
        t = b.vote(v, operators=OPS)
        assert (t.outcome, t.reason) == ("ignored", "already_denied")
    assert b.get(rid) == before
    t = b.vote(command_vote(f"!approve {rid}", OP, ev="$x"), operators=OPS)
    assert "already denied" in t.effects[0].text
    assert b.tick(T0 + 10**6) == []
    assert b.get(rid) == before


def test_same_sender_counts_once() -> None:
    b = book()
    rid = opened(b)
    assert b.vote(react(OP, ev="$1"), operators=OPS).outcome == "approved"
    t = b.vote(react(OP, "👎", ev="$2"), operators=OPS)
    assert t.reason == "already_approved"
    assert b.get(rid).decision_event_id == "$1"  # type: ignore[union-attr]


def test_self_approval_switch() -> None:
    b = book(allow_self_approval=False)
    opened(b, requester=OP)
    assert b.vote(react(OP), operators=OPS).reason == "self_approval"
    # the requester may still deny their own request
    b2 = book(allow_self_approval=False)
    opened(b2, requester=OP)
    assert b2.vote(react(OP, "👎"), operators=OPS).outcome == "denied"
    assert b.vote(react(OP2, ev="$r9"), operators=OPS).outcome == "approved"


def test_tick_expires_with_notices() -> None:
    b = book()
    rid = opened(b)
    assert b.tick(T0 + 3599.9) == []
    (t,) = b.tick(T0 + 3600)
    assert t.outcome == "expired" and t.request is not None and t.request.state is State.EXPIRED
    assert [e.room for e in t.effects] == ["approvals", "device"]
    assert rid in t.effects[0].text and "60 min" in t.effects[0].text
    assert "nothing ran" in t.effects[1].text and t.effects[1].reply_to == "$cmd"
    assert b.tick(T0 + 7200) == []
    assert b.vote(react(OP, at=T0 + 4000), operators=OPS).reason == "already_expired"


def test_late_vote_expires_instead_of_counting() -> None:
    b = book()
    opened(b)
    t: Transition = b.vote(react(OP, at=T0 + 3600), operators=OPS)
    assert t.outcome == "expired"
    assert t.request is not None and t.request.decision_event_id is None


def test_custom_ttl_and_bad_ttl() -> None:
    b = book(ttl_s=60)
    t = b.open(device="d", capability="c", args={}, requester=OP, now=T0, ttl_s=5)
    assert t.request is not None and t.request.expires_at == T0 + 5
    assert "5 s" in t.effects[1].text
    with pytest.raises(ValueError):
        book(ttl_s=0)
    with pytest.raises(ValueError):
        b.open(device="d", capability="c", args={}, requester=OP, now=T0, ttl_s=-1)


def test_pending_listing_and_forget() -> None:
    b = book()
    r1 = opened(b, event="$e1")
    t = b.open(device="pi", capability="shell.exec", args={"argv": ["ls"]}, requester=OP2, now=T0 + 1)
    assert t.request is not None
    assert [r.id for r in b.pending()] == [r1, t.request.id]
    assert [r.id for r in b.pending("pi")] == [t.request.id]
    text, html = pending_text(b.pending(), T0 + 60)
    assert r1 in text and "pi" in text and "<li>" in html
    assert pending_text([], T0)[0] == "no requests waiting for approval"
    b.vote(react(OP, to="$e1"), operators=OPS)
    assert b.forget(before=T0 + 5) == 0
    assert b.forget(before=T0 + 11) == 1
    assert b.get(r1) is None and b.by_event("$e1") is None and len(b.all()) == 1


def test_ids_are_unique_with_the_default_factory() -> None:
    b = ApprovalBook(bot_user_id=BOT)
    seen = set()
    for _ in range(200):
        t = b.open(device="d", capability="c", args={}, requester=OP, now=T0)
        assert t.request is not None
        seen.add(t.request.id)
        assert len(t.request.id) == 6
    assert len(seen) == 200


def test_preview_cuts_long_strings() -> None:
    text = preview_args({"path": "/tmp/x", "content": "a" * 1000})
    assert "(1000 characters)" in text and len(text) < 400
    assert preview_args({"argv": ["ls", "b" * 400]}).count("(400 characters)") == 1


def test_binding_is_shown_in_the_request() -> None:
    b = book()
    t = b.open(device="d", capability="fs.write", args={"path": "/x"}, requester=OP, now=T0,
               envelope_request_id="q-1", device_id="dev-d")
    assert t.request is not None and t.request.binding is not None
    binding = t.request.binding
    assert (binding.request_id, binding.device_id, binding.capability) == ("q-1", "dev-d", "fs.write")
    assert binding.deadline == int(T0 + b.ttl_s) and binding.approval_id == t.request.id
    # the text is the trust core's rendering: the device re-renders it from its envelope
    assert (t.effects[0].text, t.effects[0].html) == render_request(binding, {"path": "/x"})
    assert f"binding: {binding.digest}" in t.effects[0].text
