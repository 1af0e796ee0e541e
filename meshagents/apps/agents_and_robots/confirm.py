"""The two-step confirmation of ``!revoke``: a pure core.

Revoking is for good (peer removed, device marked revoked, Matrix user out of its
rooms), so one message is never enough:

1. ``!revoke <device>`` -> the bot answers with a fresh 6-character code, valid for
   ``ttl_s`` (default 2 minutes), bound to that operator and that device.
2. ``!revoke <device> --confirm <code>`` from the same operator, in time -> confirmed;
   the shell then revokes. The code works once.

A wrong code, another operator, or a late confirmation cancels nothing silently: the
answer says why, and a wrong code drops the pending confirmation (ask again), so codes
cannot be guessed by trying. ``!revoke X --confirm C`` sent at once, without step 1,
is refused as ``no_request``: a pasted command cannot skip the question.
Who may revoke at all (an operator, from a verified device, in #operator-approvals)
is the shell's check before this one.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Container
from dataclasses import dataclass
from typing import Literal

from meshagents.apps.agents_and_robots.commands import Command
from meshagents.apps.agents_and_robots.ids import new_request_id

DEFAULT_CONFIRM_TTL_S = 120.0

StepOutcome = Literal["asked", "confirmed", "no_request", "wrong_code", "expired"]


@dataclass(frozen=True)
class PendingConfirmation:
    device: str
    operator: str
    code: str
    expires_at: float


@dataclass(frozen=True)
class ConfirmStep:
    """The answer to one ``!revoke`` message; revoke when ``outcome == "confirmed"``."""

    outcome: StepOutcome
    device: str
    text: str


class RevokeConfirmations:
    def __init__(
        self,
        *,
        ttl_s: float = DEFAULT_CONFIRM_TTL_S,
        new_code: Callable[[Container[str]], str] = new_request_id,
    ) -> None:
        self.ttl_s = ttl_s
        self._new_code = new_code
        self._pending: dict[tuple[str, str], PendingConfirmation] = {}

    def handle(self, command: Command, *, sender: str, now: float) -> ConfirmStep:
        """Step 1 or step 2, depending on whether the command carries ``--confirm``."""
        if command.name != "revoke":
            raise ValueError(f"not a revoke command: {command.name}")
        device = str(command.args["device"])
        code = command.args.get("confirm")
        key = (sender, device)
        if code is None:
            pending = PendingConfirmation(device, sender, self._new_code(()), now + self.ttl_s)
            self._pending[key] = pending
            return ConfirmStep("asked", device, (
                f"revoking {device} removes its WireGuard peer, marks it revoked for good and removes it "
                f"from its rooms. To go on, write within {round(self.ttl_s)} s: "
                f"!revoke {device} --confirm {pending.code}"))
        pending_or_none = self._pending.pop(key, None)
        if pending_or_none is None:
            return ConfirmStep("no_request", device,
                               f"no revoke of {device} to confirm; start with !revoke {device}")
        if now >= pending_or_none.expires_at:
            return ConfirmStep("expired", device,
                               f"the code for {device} expired; start again with !revoke {device}")
        if not hmac.compare_digest(str(code), pending_or_none.code):
            return ConfirmStep("wrong_code", device,
                               f"wrong code for {device}; nothing revoked; start again with !revoke {device}")
        return ConfirmStep("confirmed", device, f"revoking {device} now")

    def pending(self, now: float) -> list[PendingConfirmation]:
        """Confirmations still open at ``now`` (expired ones are dropped)."""
        self._pending = {k: p for k, p in self._pending.items() if now < p.expires_at}
        return list(self._pending.values())
