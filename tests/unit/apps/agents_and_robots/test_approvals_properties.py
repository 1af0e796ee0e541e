"""Hypothesis over input sequences: nobody but a verified operator ever approves, and a
decided or expired request never changes again."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Literal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshagents.apps.agents_and_robots.approvals import ApprovalBook, ApprovalRequest, State, Vote

pytestmark = pytest.mark.unit

BOT = "@bot:hub"
OPS = frozenset({"@op:hub", "@op2:hub"})
T0 = 1_800_000_000.0
TTL = 600.0


@dataclass(frozen=True)
class Open:
    at: float


@dataclass(frozen=True)
class Tick:
    at: float


@dataclass(frozen=True)
class Cast:
    sender: str
    approve: bool
    via: Literal["reaction", "command"]
    target: int  # index of an opened request; out of range means a stranger event / id
    at: float
    verified: bool
    encrypted: bool


offsets = st.floats(min_value=0, max_value=2 * TTL, allow_nan=False).map(lambda s: T0 + s)


def casts(senders: st.SearchStrategy[str], verified: st.SearchStrategy[bool]) -> st.SearchStrategy[Cast]:
    return st.builds(
        Cast,
        senders,
        st.booleans(),
        st.sampled_from(["reaction", "command"]),
        st.integers(0, 4),
        offsets,
        verified,
        st.booleans(),
    )


def run(
    actions: list[Open | Tick | Cast], operators: frozenset[str]
) -> tuple[ApprovalBook, list[str], list[object]]:
    counter = itertools.count()
    book = ApprovalBook(bot_user_id=BOT, ttl_s=TTL, new_id=lambda taken: f"R{next(counter):05d}")
    opened: list[str] = []
    transitions: list[object] = []
    frozen: dict[str, ApprovalRequest] = {}
    for n, action in enumerate(actions):
        if isinstance(action, Open):
            t = book.open(
                device="dev",
                capability="fs.write",
                args={"path": "/tmp/x", "content": "x"},
                requester="@op:hub",
                now=action.at,
            )
            assert t.request is not None
            book.posted(t.request.id, f"$req{len(opened)}")
            opened.append(t.request.id)
            transitions.append(t)
        elif isinstance(action, Tick):
            transitions.extend(book.tick(action.at))
        else:
            known = action.target < len(opened)
            vote = Vote(
                sender=action.sender,
                approve=action.approve,
                event_id=f"$vote{n}",
                at=action.at,
                verified=action.verified,
                encrypted=action.encrypted,
                via=action.via,
                reacts_to=f"$req{action.target}" if action.via == "reaction" else None,
                request_id=(opened[action.target] if known else "ZZZZZZ")
                if action.via == "command"
                else None,
            )
            transitions.append(book.vote(vote, operators=operators))
        # terminal states never change: compare every earlier-terminal record
        for rid, record in frozen.items():
            assert book.get(rid) == record
        for req in book.all():
            if req.terminal:
                frozen.setdefault(req.id, req)
    return book, opened, transitions


hostile = st.lists(
    st.one_of(
        st.builds(Open, offsets),
        st.builds(Tick, offsets),
        casts(st.sampled_from([BOT, "@eve:hub", "@mallory:evil", "@op:hub.evil"]), st.booleans()),
        casts(st.sampled_from(sorted(OPS)), st.just(False)),
    ),  # operators on unverified devices
    max_size=30,
)


@settings(max_examples=200, deadline=None)
@given(hostile, st.booleans())
def test_no_input_from_non_operators_unverified_devices_or_the_bot_ever_approves(
    actions: list[Open | Tick | Cast], bot_listed: bool
) -> None:
    operators = OPS | {BOT} if bot_listed else OPS  # the bot never counts, even if listed by mistake
    book, _, transitions = run(actions, operators)
    assert all(r.state is not State.APPROVED for r in book.all())
    assert not any(getattr(t, "outcome", None) == "approved" for t in transitions)
    assert not any(e.kind == "dispatch" for t in transitions for e in getattr(t, "effects", ()))


anything = st.lists(
    st.one_of(
        st.builds(Open, offsets),
        st.builds(Tick, offsets),
        casts(st.sampled_from([BOT, "@eve:hub", *sorted(OPS)]), st.booleans()),
    ),
    max_size=30,
)


@settings(max_examples=200, deadline=None)
@given(anything)
def test_terminal_states_never_change_and_approvals_name_a_real_operator_vote(
    actions: list[Open | Tick | Cast],
) -> None:
    book, _, transitions = run(actions, OPS)  # run() checks terminal records after every step
    for req in book.all():
        if req.state is State.APPROVED:
            assert req.decided_by in OPS and req.decision_event_id is not None
            assert req.decision_event_id.startswith("$vote")
            assert req.decided_at is not None and req.decided_at < req.expires_at
        if req.state is State.EXPIRED:
            assert req.decision_event_id is None
    dispatched = [
        e.request_id for t in transitions for e in getattr(t, "effects", ()) if e.kind == "dispatch"
    ]
    assert len(dispatched) == len(set(dispatched))  # at most one envelope per request
    assert sorted(dispatched) == sorted(r.id for r in book.all() if r.state is State.APPROVED)
