"""The Matrix trust policy as a pure core: verdicts from keys and sessions, no server."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import pytest

from meshagents.matrix import crosssign as cs
from meshagents.matrix.client.policy import MemoryPins, TrustPolicy

pytestmark = pytest.mark.unit

OP = "@op:hub"
EVE = "@eve:hub"
DEV = "DEVICEA"
CURVE = "Y3VydmVrZXk"


@dataclass
class Session:
    ed25519: str
    forwarding_chain: list[str] = field(default_factory=list)


def _query(
    user: str, seeds: cs.CrossSigningSeeds, device_seed: bytes, *, signed: bool = True
) -> dict[str, Any]:
    ed = cs.public_key(device_seed)
    dev = cs.sign_json(
        {
            "user_id": user, "device_id": DEV,
            "algorithms": ["m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"],
            "keys": {f"ed25519:{DEV}": ed, f"curve25519:{DEV}": CURVE},
        },
        user, DEV, device_seed,
    )  # fmt: skip
    if signed:
        dev["signatures"][user].update(cs.sign_device(dev, user, seeds)["signatures"][user])
    up = cs.device_signing_upload(user, seeds)
    return {
        "master_keys": {user: up["master_key"]},
        "self_signing_keys": {user: up["self_signing_key"]},
        "device_keys": {user: {DEV: dev}},
    }


def _policy(pins: MemoryPins | None = None) -> TrustPolicy:
    return TrustPolicy(own_user="@bot:hub", operators=(OP,), pins=pins or MemoryPins())


def test_a_cross_signed_operator_device_is_verified_and_pinned_on_first_sight() -> None:
    seeds, dseed = cs.CrossSigningSeeds.generate(), os.urandom(32)
    pins = MemoryPins()
    policy = _policy(pins)
    policy.record_keys([OP], _query(OP, seeds, dseed))
    verdict = policy.judge(OP, decrypted=True, sender_key=CURVE, session=Session(cs.public_key(dseed)))
    assert (verdict.verified, verdict.device_id, verdict.reason) == (True, DEV, "ok")
    assert pins.pins == {OP: seeds.master_public}


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("plain", "not_encrypted"),
        ("no_session", "no_session"),
        ("forwarded", "forwarded_session"),
        ("no_keys", "unknown_device"),
        ("other_curve", "unknown_device"),
        ("unsigned", "device_not_cross_signed"),
        ("other_session_key", "session_key_mismatch"),
        ("not_operator", "not_an_operator"),
    ],
)
def test_each_broken_link_is_refused_with_its_reason(case: str, reason: str) -> None:
    seeds, dseed = cs.CrossSigningSeeds.generate(), os.urandom(32)
    sender = EVE if case == "not_operator" else OP
    policy = _policy()
    if case != "no_keys":
        policy.record_keys([sender], _query(sender, seeds, dseed, signed=case != "unsigned"))
    session: Session | None = Session(cs.public_key(os.urandom(32) if case == "other_session_key" else dseed))
    if case == "no_session":
        session = None
    elif case == "forwarded" and session is not None:
        session.forwarding_chain = ["someone"]
    key = "other" if case == "other_curve" else CURVE
    verdict = policy.judge(sender, decrypted=case != "plain", sender_key=key, session=session)
    assert not verdict.verified and verdict.reason == reason


def test_a_changed_master_key_is_refused_alerted_and_pending() -> None:
    old, new, dseed = cs.CrossSigningSeeds.generate(), cs.CrossSigningSeeds.generate(), os.urandom(32)
    pins = MemoryPins()
    pins.pins = {OP: old.master_public}
    policy = _policy(pins)
    policy.record_keys([OP], _query(OP, new, dseed))
    verdict = policy.judge(OP, decrypted=True, sender_key=CURVE, session=Session(cs.public_key(dseed)))
    assert (verdict.verified, verdict.reason) == (False, "master_key_changed")
    assert policy.pending_identities == {OP: new.master_public}
    assert len(policy.trust_alerts) == 1 and OP in policy.trust_alerts[0]
    policy.judge(OP, decrypted=True, sender_key=CURVE, session=Session(cs.public_key(dseed)))
    assert len(policy.trust_alerts) == 1  # one alert per change, not per event


def test_devices_are_judged_and_a_newly_good_device_reports_it_was_left_out() -> None:
    seeds, dseed = cs.CrossSigningSeeds.generate(), os.urandom(32)
    policy = _policy()
    policy.record_keys([OP], _query(OP, seeds, dseed, signed=False))
    ed = cs.public_key(dseed)
    (first,) = policy.judge_devices(OP, [(DEV, ed, CURVE)])
    assert (first.good, first.before) == (False, None)
    assert policy.stale_users({OP: [DEV]}) == []
    policy.dirty.add(OP)
    assert policy.stale_users({OP: [DEV]}) == [OP]
    policy.record_keys([OP], _query(OP, seeds, dseed))
    (again,) = policy.judge_devices(OP, [(DEV, ed, CURVE)])
    assert (again.good, again.before) == (True, False)
    (wrong_keys,) = policy.judge_devices(OP, [(DEV, ed, "not-the-curve")])
    assert not wrong_keys.good


def test_refresh_is_asked_only_when_fresh_keys_could_change_the_verdict() -> None:
    seeds, dseed = cs.CrossSigningSeeds.generate(), os.urandom(32)
    policy = _policy()
    asked: list[int] = []

    def judge() -> Any:
        asked.append(1)
        return policy.judge(OP, decrypted=True, sender_key=CURVE, session=Session(cs.public_key(dseed)))

    assert policy.should_refresh(OP, True, judge) and asked == []  # unknown keys: stale, not judged
    assert not policy.should_refresh(OP, False, judge)  # plain events: keys never help
    policy.record_keys([OP], _query(OP, seeds, dseed))
    assert not policy.should_refresh(OP, True, judge) and asked == [1]  # verified already


def test_verdicts_are_remembered_for_a_bounded_number_of_events() -> None:
    policy = _policy()
    verdict = policy.judge(OP, decrypted=False, sender_key=CURVE, session=None)
    for i in range(4097):
        policy.remember(f"$e{i}", verdict)
    assert policy.recall("$e0") is None and policy.recall("$e4096") == verdict


def test_a_new_client_config_reaches_the_policy(tmp_path: Any) -> None:
    """The bot and the agent widen ``operators`` by assigning a new ClientConfig copy."""
    import dataclasses

    from meshagents.matrix.client import ClientConfig, MatrixClient

    cfg = ClientConfig(homeserver="http://127.0.0.1:9", user_id="@bot:hub", password="p", store_dir=tmp_path)
    client = MatrixClient(cfg)
    client.config = dataclasses.replace(cfg, operators=(OP,), pinned_master_keys={OP: "M"})
    assert client.policy.operators == (OP,) and client.policy.pin(OP) == "M"
    assert client._sync.config is client.config and client._session.config is client.config
