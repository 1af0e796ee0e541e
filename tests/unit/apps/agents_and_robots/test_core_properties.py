"""Hypothesis over whole conversations: nothing a non-operator, an unverified device
or the bot writes or reacts ever leads to an envelope."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshagents.apps.agents_and_robots.approvals import ApprovalBook
from meshagents.apps.agents_and_robots.core import (
    Action,
    BotCore,
    DeviceInfo,
    Dispatch,
    Message,
    PostApprovalRequest,
    Reaction,
)

pytestmark = pytest.mark.unit

BOT = "@bot:hub"
OP = "@op:hub"
APPROVALS = "!approvals:hub"
ROOM = "!dev:hub"
T0 = 1_800_000_000.0
VIEW: dict[str, dict[str, Any]] = {
    "shell.exec.ls": {"executables": ["/usr/bin/ls"]},
    "fs.write": {"path_prefixes": ["/tmp"], "requires_approval": True},
}
DEVICES = {"dev": DeviceInfo("dev", VIEW, frozenset({OP}))}
BODIES = [
    "!exec ls",
    "!fs.write /tmp/x hi",
    "!approve A00000",
    "!approve A00001",
    "!deny A00000",
    "!pending",
    "!revoke dev",
    "!revoke dev --confirm AAAAAA",
    "hello",
    "!help",
    "!exec rm -rf /",
]


@dataclass(frozen=True)
class Say:
    who: str
    verified: bool
    in_approvals: bool
    body: str
    at: float


@dataclass(frozen=True)
class React:
    who: str
    verified: bool
    key: str
    target: int
    at: float


times = st.floats(0, 7200, allow_nan=False).map(lambda s: T0 + s)
hostile_people = st.sampled_from([BOT, "@eve:hub", "@op:hub.evil"])


def step_strategy(
    people: st.SearchStrategy[str], verified: st.SearchStrategy[bool]
) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.builds(Say, people, verified, st.booleans(), st.sampled_from(BODIES), times),
        st.builds(React, people, verified, st.sampled_from(["👍", "👎", "❤️"]), st.integers(0, 2), times),
        times,  # a tick
    )


def run(operator_steps: list[Any], hostile_steps: list[Any]) -> list[Action]:
    """The operator opens approval requests (never voting); the hostile steps follow."""
    book_ids = itertools.count()
    core = BotCore(
        bot_user_id=BOT,
        approvals_room_id=APPROVALS,
        approvals=ApprovalBook(bot_user_id=BOT, new_id=lambda t: f"A{next(book_ids):05d}"),
    )
    actions: list[Action] = []
    posted = 0
    for body in operator_steps:
        out = core.on_message(
            Message(ROOM, "device", "dev", OP, f"$op{len(actions)}", body, T0, True), DEVICES
        )
        for a in out:
            if isinstance(a, PostApprovalRequest):
                core.posted(a.approval_id, f"$req{posted}")
                posted += 1
    for n, s in enumerate(hostile_steps):
        if isinstance(s, Say):
            room, kind, dev = (APPROVALS, "approvals", None) if s.in_approvals else (ROOM, "device", "dev")
            actions += core.on_message(
                Message(room, kind, dev, s.who, f"$h{n}", s.body, s.at, s.verified),  # type: ignore[arg-type]
                DEVICES,
            )
        elif isinstance(s, React):
            actions += core.on_reaction(
                Reaction(s.who, s.key, f"$req{s.target}", f"$h{n}", s.at, s.verified), DEVICES
            )
        else:
            actions += core.tick(s)
    return actions


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.sampled_from(["!fs.write /tmp/a x", "!fs.write /tmp/b y"]), min_size=1, max_size=3),
    st.lists(
        st.one_of(step_strategy(hostile_people, st.booleans()), step_strategy(st.just(OP), st.just(False))),
        max_size=25,
    ),
)
def test_no_hostile_conversation_leads_to_an_envelope(operator_steps: list[str], hostile: list[Any]) -> None:
    actions = run(operator_steps, hostile)
    assert not [a for a in actions if isinstance(a, Dispatch)]
