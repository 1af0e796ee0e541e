"""The two-step !revoke confirmation."""

from __future__ import annotations

import pytest

from meshagents.apps.agents_and_robots.commands import Command, parse
from meshagents.apps.agents_and_robots.confirm import RevokeConfirmations

pytestmark = pytest.mark.unit

OP = "@op:hub"
T0 = 1_800_000_000.0


def cmd(text: str) -> Command:
    result = parse(text)
    assert isinstance(result, Command), result
    return result


def ask(c: RevokeConfirmations, device: str = "old-laptop", sender: str = OP, now: float = T0) -> str:
    step = c.handle(cmd(f"!revoke {device}"), sender=sender, now=now)
    assert step.outcome == "asked" and step.device == device
    code = step.text.rsplit(" ", 1)[1]
    assert f"!revoke {device} --confirm {code}" in step.text
    return code


def test_two_steps_confirm() -> None:
    c = RevokeConfirmations()
    code = ask(c)
    step = c.handle(cmd(f"!revoke old-laptop --confirm {code.lower()}"), sender=OP, now=T0 + 30)
    assert step.outcome == "confirmed" and step.device == "old-laptop"
    # the code works once
    again = c.handle(cmd(f"!revoke old-laptop --confirm {code}"), sender=OP, now=T0 + 31)
    assert again.outcome == "no_request"


def test_confirm_without_asking_first_is_refused() -> None:
    c = RevokeConfirmations()
    step = c.handle(cmd("!revoke old-laptop --confirm ABC234"), sender=OP, now=T0)
    assert step.outcome == "no_request" and "!revoke old-laptop" in step.text


def test_wrong_code_cancels() -> None:
    c = RevokeConfirmations()
    code = ask(c)
    wrong = "000000" if code != "000000" else "111111"
    assert (
        c.handle(cmd(f"!revoke old-laptop --confirm {wrong}"), sender=OP, now=T0 + 1).outcome == "wrong_code"
    )
    assert (
        c.handle(cmd(f"!revoke old-laptop --confirm {code}"), sender=OP, now=T0 + 2).outcome == "no_request"
    )


def test_expired_code() -> None:
    c = RevokeConfirmations(ttl_s=120)
    code = ask(c)
    assert c.handle(cmd(f"!revoke old-laptop --confirm {code}"), sender=OP, now=T0 + 120).outcome == "expired"


def test_bound_to_operator_and_device() -> None:
    c = RevokeConfirmations()
    code = ask(c)
    assert (
        c.handle(cmd(f"!revoke old-laptop --confirm {code}"), sender="@op2:hub", now=T0).outcome
        == "no_request"
    )
    assert c.handle(cmd(f"!revoke other --confirm {code}"), sender=OP, now=T0).outcome == "no_request"
    assert c.handle(cmd(f"!revoke old-laptop --confirm {code}"), sender=OP, now=T0).outcome == "confirmed"


def test_asking_again_replaces_the_code_and_pending_prunes() -> None:
    codes = iter(["AAAAAA", "BBBBBB"])
    c = RevokeConfirmations(new_code=lambda taken: next(codes))
    assert ask(c) == "AAAAAA"
    assert ask(c, now=T0 + 60) == "BBBBBB"
    assert len(c.pending(T0 + 61)) == 1
    assert c.pending(T0 + 60 + 120) == []
    assert (
        c.handle(cmd("!revoke old-laptop --confirm AAAAAA"), sender=OP, now=T0 + 62).outcome == "no_request"
    )


def test_only_revoke_commands() -> None:
    with pytest.raises(ValueError):
        RevokeConfirmations().handle(cmd("!status"), sender=OP, now=T0)
