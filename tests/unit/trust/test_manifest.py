"""Manifest signing and verification: any change refused, serial only grows, expiry, domains."""

from __future__ import annotations

import json
import time
import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nacl.signing import SigningKey

from meshagents.errors import FnError
from meshagents.trust import manifest as M
from meshagents.trust.canonical import canonical_bytes, loads_strict
from meshagents.trust.models import Manifest
from meshagents.trust.signing import TYPE_TOKEN, sign_payload, verify_payload
from tests.testbed.trust_keys import Keys, manifest_body

pytestmark = pytest.mark.unit


def _verify_bytes(raw: bytes, op_pub: str) -> Manifest:
    data = loads_strict(raw)
    if not isinstance(data, dict):
        raise FnError("manifest_invalid_signature", "not an object")
    return M.verify(data, op_pub)


def test_sign_and_verify(keys: Keys, make_manifest: Callable[..., Manifest]) -> None:
    signed = make_manifest()
    out = M.verify(signed.model_dump(mode="json"), keys.op_pub, now=int(time.time()))
    assert out == signed
    assert out.capability("shell.exec.ls") is not None


def test_key_order_does_not_matter(keys: Keys, make_manifest: Callable[..., Manifest]) -> None:
    data = make_manifest().model_dump(mode="json")
    reordered = dict(reversed(list(data.items())))
    assert M.verify(reordered, keys.op_pub).serial == 1


@settings(
    max_examples=300,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    deadline=None,
)
@given(st.data())
def test_any_single_byte_change_is_refused(keys: Keys, data: st.DataObject) -> None:
    signed = M.sign(manifest_body(keys), keys.operator)
    raw = bytearray(canonical_bytes(signed.model_dump(mode="json")))
    pos = data.draw(st.integers(0, len(raw) - 1))
    new = data.draw(st.integers(0, 255).filter(lambda b: b != raw[pos]))
    raw[pos] = new
    with pytest.raises(FnError):
        _verify_bytes(bytes(raw), keys.op_pub)


@pytest.mark.parametrize("field", ["controllers", "capabilities", "approvers"])
def test_reordering_a_list_is_refused(keys: Keys, field: str) -> None:
    body = manifest_body(keys)
    body["controllers"] = [keys.ctl_pub, keys.dev_pub]
    body["approvers"] = ["@a:x", "@b:x"]
    data = M.sign(body, keys.operator).model_dump(mode="json")
    data[field] = list(reversed(data[field]))
    with pytest.raises(FnError) as err:
        M.verify(data, keys.op_pub)
    assert err.value.code == "manifest_invalid_signature"


def test_unicode_normalisation_tricks_are_refused(keys: Keys) -> None:
    data = M.sign(manifest_body(keys), keys.operator).model_dump(mode="json")
    cap = data["capabilities"][0]
    assert cap["description"] == "café list"
    for trick in (
        unicodedata.normalize("NFD", "café list"),
        "cafe\u0301 list",
        "caf\u00e9\u200b list",
        "cafè list",
    ):
        tampered = json.loads(json.dumps(data))
        tampered["capabilities"][0]["description"] = trick
        with pytest.raises(FnError) as err:
            M.verify(tampered, keys.op_pub)
        assert err.value.code == "manifest_invalid_signature"
    with pytest.raises(FnError) as err:
        M.sign(manifest_body(keys, matrix_user="@de\u0301v:x"), keys.operator)
    assert err.value.code == "canonical_invalid"


def test_wrong_key_unsigned_and_extra_field(keys: Keys, make_manifest: Callable[..., Manifest]) -> None:
    data = make_manifest().model_dump(mode="json")
    other = SigningKey.generate()
    from meshagents.trust.signing import public_b64

    with pytest.raises(FnError, match="manifest_invalid_signature"):
        M.verify(data, public_b64(other))
    with pytest.raises(FnError, match="manifest_invalid_signature"):
        M.verify({**data, "signature": None}, keys.op_pub)
    with pytest.raises(FnError, match="manifest_invalid_signature"):
        M.verify({**data, "extra": 1}, keys.op_pub)
    forged = M.sign(manifest_body(keys), other).model_dump(mode="json")
    forged["operator_key"] = keys.op_pub
    with pytest.raises(FnError, match="manifest_invalid_signature"):
        M.verify(forged, keys.op_pub)


def test_signature_of_another_kind_never_verifies(keys: Keys) -> None:
    body = M.sign(manifest_body(keys), keys.operator).model_dump(mode="json")
    body.pop("signature")
    as_token = dict(body, type=TYPE_TOKEN)
    sig = sign_payload(as_token, keys.operator, TYPE_TOKEN)
    assert not verify_payload(dict(body, type=TYPE_TOKEN), sig, keys.op_pub, "meshagents.manifest.v1")
    assert not verify_payload(body, sig, keys.op_pub, "meshagents.manifest.v1")
    with pytest.raises(FnError, match="manifest_invalid_signature"):
        M.verify({**body, "signature": sig}, keys.op_pub)


def test_expiry(keys: Keys, make_manifest: Callable[..., Manifest]) -> None:
    signed = make_manifest()
    with pytest.raises(FnError, match="manifest_expired"):
        M.verify(signed.model_dump(mode="json"), keys.op_pub, now=signed.expires_at)


def test_serial_only_grows(keys: Keys, tmp_path: Path, make_manifest: Callable[..., Manifest]) -> None:
    store = M.SerialStore(tmp_path / "serials.sqlite")
    m2 = make_manifest(serial=2)
    M.verify(m2.model_dump(mode="json"), keys.op_pub, serials=store)
    M.verify(m2.model_dump(mode="json"), keys.op_pub, serials=store)  # same serial again: fine
    store.close()
    store = M.SerialStore(tmp_path / "serials.sqlite")  # survives a restart
    with pytest.raises(FnError) as err:
        M.verify(make_manifest(serial=1).model_dump(mode="json"), keys.op_pub, serials=store)
    assert err.value.code == "manifest_serial_rollback"
    assert store.highest("dev-0001") == 2
    m3 = M.resign(m2, keys.operator)
    assert m3.serial == 3
    M.verify(m3.model_dump(mode="json"), keys.op_pub, serials=store)
    assert store.highest("dev-0001") == 3


@pytest.mark.parametrize(
    "change",
    [
        {"serial": 0},
        {"expires_at": 1, "issued_at": 2},
        {"device_key": "AAAA"},
        {"capabilities": [{"name": "a"}, {"name": "a"}]},
        {"capabilities": [{"name": "x", "executables": ["bin/ls"]}]},
        {"capabilities": [{"name": "x", "path_prefixes": ["/a/../b"]}]},
        {"serial": "2"},
    ],
)
def test_invalid_manifests_are_not_signed(keys: Keys, change: dict[str, Any]) -> None:
    with pytest.raises(FnError) as err:
        M.sign(manifest_body(keys, **change), keys.operator)
    assert err.value.code == "manifest_invalid"


def test_example_manifest_signs_and_verifies(keys: Keys) -> None:
    from meshagents.state import project_root

    data = M.load_file(project_root() / "docs" / "examples" / "manifest.json")
    signed = M.sign(data, keys.operator)
    assert M.verify(signed.model_dump(mode="json"), keys.op_pub).device_name == "home-wsl"


def test_signed_but_incomplete_is_refused(keys: Keys) -> None:
    """What runs is what was signed: a signed document the model would complete with defaults fails."""
    body = M.sign(manifest_body(keys), keys.operator).model_dump(mode="json")
    body.pop("signature")
    del body["capabilities"][0]["timeout_s"]  # today's default would silently apply
    body["signature"] = sign_payload(body, keys.operator, "meshagents.manifest.v1")
    with pytest.raises(FnError) as err:
        M.verify(body, keys.op_pub)
    assert err.value.code == "manifest_invalid"
