"""Cross-signing helpers: signing JSON, the upload bodies, and the chain checker."""

from __future__ import annotations

import copy
import os
from typing import Any

import nacl.signing
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshagents.matrix import crosssign as cs

pytestmark = pytest.mark.unit

USER = "@op:hub"
DEV = "DEVICEA"


def _device(user: str, device_id: str, seed: bytes, curve: str = "Y3VydmU") -> dict[str, Any]:
    ed = cs.public_key(seed)
    keys = {
        "user_id": user,
        "device_id": device_id,
        "algorithms": ["m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"],
        "keys": {f"ed25519:{device_id}": ed, f"curve25519:{device_id}": curve},
    }
    return cs.sign_json(keys, user, device_id, seed)


def _query(seeds: cs.CrossSigningSeeds, device_seed: bytes, *, sign_device: bool = True) -> dict[str, Any]:
    up = cs.device_signing_upload(USER, seeds)
    dev = _device(USER, DEV, device_seed)
    if sign_device:
        signed = cs.sign_device(dev, USER, seeds)
        dev["signatures"][USER].update(signed["signatures"][USER])
    return {
        "master_keys": {USER: up["master_key"]},
        "self_signing_keys": {USER: up["self_signing_key"]},
        "user_signing_keys": {USER: up["user_signing_key"]},
        "device_keys": {USER: {DEV: dev}},
    }


def test_b64_round_trip_is_unpadded() -> None:
    raw = os.urandom(32)
    text = cs.b64u(raw)
    assert "=" not in text and cs.b64u_decode(text) == raw


def test_signing_bytes_drop_signatures_and_unsigned_and_sort() -> None:
    obj = {"b": 1, "a": "é", "signatures": {"x": {}}, "unsigned": {"age": 3}}
    assert cs.signing_bytes(obj) == '{"a":"é","b":1}'.encode()


@pytest.mark.parametrize("bad", [1.5, 2**53, -(2**53)])
def test_signing_refuses_non_canonical_numbers(bad: object) -> None:
    with pytest.raises(ValueError):
        cs.signing_bytes({"n": bad})


def test_upload_body_is_signed_by_master() -> None:
    seeds = cs.CrossSigningSeeds.generate()
    up = cs.device_signing_upload(USER, seeds)
    master = seeds.master_public
    assert up["master_key"]["keys"] == {f"ed25519:{master}": master}
    assert up["master_key"]["usage"] == ["master"]
    for name in ("self_signing_key", "user_signing_key"):
        assert cs.verify_json(up[name], USER, master, master)
    # Deterministic: an identical re-upload needs no auth on the server.
    assert cs.device_signing_upload(USER, seeds) == up


def test_seeds_json_round_trip_and_length_check() -> None:
    seeds = cs.CrossSigningSeeds.generate()
    assert cs.CrossSigningSeeds.from_json(seeds.to_json()) == seeds
    with pytest.raises(ValueError):
        cs.CrossSigningSeeds(b"x" * 31, b"y" * 32, b"z" * 32)


def test_chain_ok_and_device_lookup() -> None:
    seeds, dseed = cs.CrossSigningSeeds.generate(), os.urandom(32)
    q = _query(seeds, dseed)
    res = cs.check_device_chain(q, USER, DEV, seeds.master_public)
    assert res.ok and res.reason == "ok" and res.master_key == seeds.master_public
    assert res.device_ed25519 == cs.public_key(dseed)
    assert cs.device_for_curve_key(q, USER, "Y3VydmU") == DEV
    assert cs.device_for_curve_key(q, USER, "other") is None


def test_chain_failures_have_stable_reasons() -> None:
    seeds, dseed = cs.CrossSigningSeeds.generate(), os.urandom(32)
    assert cs.check_device_chain(_query(seeds, dseed, sign_device=False), USER, DEV).reason == (
        "device_not_cross_signed"
    )
    assert (
        cs.check_device_chain(_query(seeds, dseed), USER, DEV, "pinnedother").reason == "master_key_changed"
    )
    q = _query(seeds, dseed)
    del q["master_keys"][USER]
    assert cs.check_device_chain(q, USER, DEV).reason == "no_master_key"
    q = _query(seeds, dseed)
    q["self_signing_keys"][USER] = cs.key_object(USER, "self_signing", cs.public_key(os.urandom(32)))
    assert cs.check_device_chain(q, USER, DEV).reason == "self_signing_not_signed_by_master"
    assert cs.check_device_chain(_query(seeds, dseed), USER, "NOPE").reason == "no_device"
    # Another user's self-signing key cannot vouch for this user's device.
    other = cs.CrossSigningSeeds.generate()
    q = _query(seeds, dseed)
    q["self_signing_keys"][USER] = cs.device_signing_upload(USER, other)["self_signing_key"]
    assert not cs.check_device_chain(q, USER, DEV).ok


def test_usage_and_user_id_are_checked() -> None:
    seeds, dseed = cs.CrossSigningSeeds.generate(), os.urandom(32)
    q = _query(seeds, dseed)
    q["master_keys"][USER]["usage"] = ["self_signing"]
    assert cs.check_device_chain(q, USER, DEV).reason == "bad_master_key"
    q = _query(seeds, dseed)
    q["device_keys"][USER][DEV]["user_id"] = "@eve:hub"
    assert cs.check_device_chain(q, USER, DEV).reason == "no_device"


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_any_changed_byte_of_signed_device_is_refused(data: st.DataObject) -> None:
    seeds, dseed = cs.CrossSigningSeeds.generate(), os.urandom(32)
    q = _query(seeds, dseed)
    dev = q["device_keys"][USER][DEV]
    field = data.draw(st.sampled_from(["algorithms", "ed", "curve"]))
    tampered = copy.deepcopy(q)
    tdev = tampered["device_keys"][USER][DEV]
    if field == "algorithms":
        tdev["algorithms"] = [*dev["algorithms"], data.draw(st.text(min_size=1, max_size=8))]
    else:
        kid = f"{'ed25519' if field == 'ed' else 'curve25519'}:{DEV}"
        raw = bytearray(cs.b64u_decode(dev["keys"][kid]) if field == "ed" else b"curve")
        i = data.draw(st.integers(0, len(raw) - 1))
        raw[i] ^= data.draw(st.integers(1, 255))
        tdev["keys"][kid] = cs.b64u(bytes(raw))
    assert not cs.check_device_chain(tampered, USER, DEV).ok


def test_verify_json_wrong_key_or_missing_signature() -> None:
    seed = os.urandom(32)
    obj = cs.sign_json({"a": 1}, USER, "K", seed)
    assert cs.verify_json(obj, USER, "K", cs.public_key(seed))
    assert not cs.verify_json(obj, USER, "K", cs.public_key(os.urandom(32)))
    assert not cs.verify_json(obj, "@x:y", "K", cs.public_key(seed))
    assert not cs.verify_json({"a": 1}, USER, "K", cs.public_key(seed))
    vk = nacl.signing.SigningKey(seed).verify_key
    assert cs.public_key(seed) == cs.b64u(bytes(vk))
