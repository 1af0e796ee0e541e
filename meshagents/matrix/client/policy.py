"""The trust policy: which Matrix events and devices count as the operators' own.

A pure core — no network, no nio client: it is given what the sync and ``/keys/query``
saw (key slices, the inbound session of an event, the devices in a room) and answers
with verdicts. The facade (``MatrixClient``) fetches, the policy decides::

    policy = TrustPolicy(own_user="@bot:hs", operators=("@op:hs",), pins=MemoryPins())
    policy.record_keys(["@op:hs"], keys_query_answer)
    policy.judge("@op:hs", decrypted=True, sender_key=curve, session=inbound) -> Verdict
    policy.judge_devices("@op:hs", [(device_id, ed25519, curve25519), ...]) -> [DeviceTrust]
    policy.accept_identity(statement_content)   # an operator-signed new master key

The rule: an event counts as verified only when it was decrypted, the inbound session
came straight from the sender (no forwarding chain), the sending device (found by its
curve25519 key in the keys) holds the session's ed25519 key, the device is signed by its
owner's self-signing key, that key is signed by the owner's master key, the owner is an
operator, and the owner's master key equals the pinned one (configured, else pinned on
first sight). A changed master key is refused, alerted and listed in
``pending_identities`` until an ``org.meshagents.matrix_identity`` statement signed by
an operator key names it; it is then pinned at once. The chain is checked with PyNaCl
(``crosssign.check_device_chain``), never taken from the server.

Pins live in a ``PinStore`` (``MemoryPins`` here; the client's is files in its store).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from meshagents.errors import FnError
from meshagents.matrix import crosssign, identity

log = logging.getLogger("meshagents.matrix")

#: Reasons after which fresh keys may change the verdict (worth one ``/keys/query``).
REFRESH_REASONS = ("unknown_device", "device_not_cross_signed")
_VERDICTS_KEPT = 4096


@dataclass(frozen=True)
class Verdict:
    verified: bool
    device_id: str | None
    reason: str


@dataclass(frozen=True)
class DeviceTrust:
    """What the policy says of one device of a room member."""

    device_id: str
    good: bool
    #: The previous answer for this device (None: never judged): ``False`` then ``True``
    #: means it was left out of the current room key.
    before: bool | None


class InboundSession(Protocol):
    """What the policy reads of an inbound Megolm session (nio's InboundGroupSession)."""

    forwarding_chain: list[str]
    ed25519: str


class PinStore(Protocol):
    """Where pinned and confirmed master keys survive a restart."""

    def load_pins(self) -> dict[str, str]: ...
    def save_pins(self, pins: dict[str, str]) -> None: ...
    def load_confirmed(self) -> dict[str, dict[str, Any]]: ...
    def save_confirmed(self, confirmed: dict[str, dict[str, Any]]) -> None: ...


class MemoryPins:
    """A PinStore that forgets on exit (tests, throwaway clients)."""

    def __init__(self) -> None:
        self.pins: dict[str, str] = {}
        self.confirmed: dict[str, dict[str, Any]] = {}

    def load_pins(self) -> dict[str, str]:
        return dict(self.pins)

    def save_pins(self, pins: dict[str, str]) -> None:
        self.pins = dict(pins)

    def load_confirmed(self) -> dict[str, dict[str, Any]]:
        return {k: dict(v) for k, v in self.confirmed.items()}

    def save_confirmed(self, confirmed: dict[str, dict[str, Any]]) -> None:
        self.confirmed = {k: dict(v) for k, v in confirmed.items()}


class TrustPolicy:
    """The verdicts and what they rest on: key slices, pins, per-device answers."""

    def __init__(
        self,
        *,
        own_user: str,
        operators: Sequence[str],
        pins: PinStore,
        pinned_master_keys: Mapping[str, str] | None = None,
        identity_keys: Callable[[], Sequence[str]] | None = None,
    ) -> None:
        self.own_user = own_user
        self.operators = tuple(operators)
        self.pinned_master_keys = dict(pinned_master_keys or {})
        self.identity_keys = identity_keys
        self._store = pins
        self.keys: dict[str, dict[str, Any]] = {}  # user -> their /keys/query slice
        self.dirty: set[str] = set()  # users whose device list changed
        self.trusted: dict[tuple[str, str], bool] = {}  # (user, device) -> policy applied
        self._chain_cache: dict[tuple[str, str, str | None], crosssign.ChainResult] = {}
        self._verdicts: OrderedDict[str, Verdict] = OrderedDict()
        self._pins: dict[str, str] | None = None
        self._confirmed: dict[str, dict[str, Any]] | None = None
        self.trust_alerts: list[str] = []
        #: Operators whose master key changed and is not confirmed yet: user -> new master key.
        self.pending_identities: dict[str, str] = {}

    # ------------------------------------------------------------------ keys
    def record_keys(self, users: Iterable[str], data: Mapping[str, Any]) -> None:
        """Keep each user's slice of a ``/keys/query`` answer; their chains are recomputed."""
        for user in users:
            self.keys[user] = {
                "master_keys": {user: data.get("master_keys", {}).get(user)}
                if user in data.get("master_keys", {})
                else {},
                "self_signing_keys": {user: data["self_signing_keys"][user]}
                if user in data.get("self_signing_keys", {})
                else {},
                "device_keys": {user: data.get("device_keys", {}).get(user, {})},
            }
            self.dirty.discard(user)
            self._forget_chains(user)

    def is_stale(self, user: str) -> bool:
        return user in self.dirty or user not in self.keys

    def stale_users(self, devices: Mapping[str, Iterable[str]]) -> list[str]:
        """Members (user -> their device ids) whose keys must be fetched before judging."""
        return [
            u
            for u, ids in devices.items()
            if self.is_stale(u) or any((u, d) not in self.trusted for d in ids)
        ]

    def chain(self, user: str, device_id: str, pin: str | None) -> crosssign.ChainResult:
        """check_device_chain over the cached keys, memoised until the user's keys change."""
        key = (user, device_id, pin)
        hit = self._chain_cache.get(key)
        if hit is None:
            hit = crosssign.check_device_chain(self.keys.get(user, {}), user, device_id, pin)
            self._chain_cache[key] = hit
        return hit

    def _forget_chains(self, user: str) -> None:
        for key in [k for k in self._chain_cache if k[0] == user]:
            del self._chain_cache[key]

    # ------------------------------------------------------------------ pins
    def _confirmations(self) -> dict[str, dict[str, Any]]:
        if self._confirmed is None:
            self._confirmed = self._store.load_confirmed()
        return self._confirmed

    def pin(self, user: str) -> str | None:
        """The master key ``user`` must have: confirmed, configured, or first seen."""
        confirmed = self._confirmations().get(user)
        if confirmed is not None:
            return str(confirmed["master_key"])
        if user in self.pinned_master_keys:
            return self.pinned_master_keys[user]
        if self._pins is None:
            self._pins = self._store.load_pins()
        return self._pins.get(user)

    def remember_pin(self, user: str, master: str) -> None:
        if self.pin(user) is None:
            assert self._pins is not None
            self._pins[user] = master
            self._store.save_pins(dict(self._pins))

    def accept_identity(self, content: Any) -> None:
        """An operator-signed statement naming an operator's new master key: pin it."""
        if self.identity_keys is None:
            return
        try:
            stmt = identity.verify_statement(content, list(self.identity_keys()))
        except FnError as exc:
            log.warning("%s: ignoring a Matrix identity statement: %s", self.own_user, exc.message)
            return
        if stmt.user_id not in self.operators:
            log.warning("%s: identity statement for %s, not an operator", self.own_user, stmt.user_id)
            return
        confirmed = self._confirmations()
        prev = confirmed.get(stmt.user_id)
        if prev is not None and int(prev.get("issued_at", 0)) >= stmt.issued_at:
            return  # an older (or the same) statement: never pin an old identity back
        confirmed[stmt.user_id] = {"master_key": stmt.master_key, "issued_at": stmt.issued_at}
        self._store.save_confirmed(dict(confirmed))
        if self._pins is not None:
            self._pins.pop(stmt.user_id, None)
        self._forget_chains(stmt.user_id)
        for dev in [k for k in self.trusted if k[0] == stmt.user_id]:
            del self.trusted[dev]
        self.dirty.add(stmt.user_id)
        self.pending_identities.pop(stmt.user_id, None)
        self.trust_alerts = [a for a in self.trust_alerts if stmt.user_id not in a]
        log.warning(
            "%s: the operator key confirmed the new master key %s of %s",
            self.own_user, stmt.master_key, stmt.user_id,
        )  # fmt: skip

    # ------------------------------------------------------------------ verdicts
    def judge(
        self, sender: str, *, decrypted: bool, sender_key: str, session: InboundSession | None
    ) -> Verdict:
        """The verdict for one event of ``sender`` (``session``: its inbound session, if held)."""
        if not decrypted:
            return Verdict(False, None, "not_encrypted")
        if session is None:
            return Verdict(False, None, "no_session")
        if session.forwarding_chain:
            return Verdict(False, None, "forwarded_session")
        query = self.keys.get(sender)
        if query is None:
            return Verdict(False, None, "unknown_device")
        device_id = crosssign.device_for_curve_key(query, sender, sender_key)
        if device_id is None:
            return Verdict(False, None, "unknown_device")
        is_operator = sender in self.operators
        result = self.chain(sender, device_id, self.pin(sender) if is_operator else None)
        if result.reason == "master_key_changed":
            if result.master_key:
                self.pending_identities[sender] = result.master_key
            alert = f"master key of {sender} changed to {result.master_key}; refusing its devices"
            if alert not in self.trust_alerts:
                log.error(alert)
                self.trust_alerts.append(alert)
        if not result.ok:
            return Verdict(False, device_id, result.reason)
        if result.device_ed25519 != session.ed25519:
            return Verdict(False, device_id, "session_key_mismatch")
        if not is_operator:
            return Verdict(False, device_id, "not_an_operator")
        if result.master_key:
            self.remember_pin(sender, result.master_key)
        return Verdict(True, device_id, "ok")

    def should_refresh(self, sender: str, decrypted: bool, judge: Callable[[], Verdict]) -> bool:
        """Whether fresh keys of ``sender`` could change the verdict (one query, then judge
        again); ``judge`` is asked only when the keys are not known to be stale."""
        return decrypted and (self.is_stale(sender) or judge().reason in REFRESH_REASONS)

    def remember(self, event_id: str, verdict: Verdict) -> None:
        """Keep the verdict of a dispatched event (``recall``), the last few thousand."""
        self._verdicts[event_id] = verdict
        while len(self._verdicts) > _VERDICTS_KEPT:
            self._verdicts.popitem(last=False)

    def recall(self, event_id: str) -> Verdict | None:
        return self._verdicts.get(event_id)

    def judge_devices(
        self, user: str, devices: Iterable[tuple[str, str, str]]
    ) -> list[DeviceTrust]:
        """Each ``(device_id, ed25519, curve25519)`` of ``user``: good when its chain holds
        and its keys are the chain's. An operator seen good for the first time is pinned
        here too (not only on a first command: a reset before it would be pinned instead)."""
        pin = self.pin(user) if user in self.operators else None
        out = []
        for device_id, ed25519, curve25519 in devices:
            result = self.chain(user, device_id, pin)
            good = result.ok and result.device_ed25519 == ed25519 and result.device_curve25519 == curve25519
            before = self.trusted.get((user, device_id))
            self.trusted[(user, device_id)] = good
            if good and pin is None and user in self.operators and result.master_key:
                self.remember_pin(user, result.master_key)
                pin = result.master_key
            out.append(DeviceTrust(device_id, good, before))
        return out

    def trust_own(self, device_id: str) -> None:
        """Our own device: trusted, never judged."""
        self.trusted[(self.own_user, device_id)] = True
