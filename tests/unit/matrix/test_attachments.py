"""Encrypted attachments (pure part): the spec's shape, round trips through nio's own
decrypt_attachment, and any changed byte refused with a stable code."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nio.crypto.attachments import decrypt_attachment

from meshagents.errors import FnError
from meshagents.matrix import attachments as att

pytestmark = pytest.mark.unit


def _ref(data: bytes) -> tuple[bytes, att.EncryptedFile]:
    ciphertext, info = att.encrypt(data)
    return ciphertext, att.parse_file({**info, "url": "mxc://hs.example/AbC123"})


def test_the_file_object_is_the_specs() -> None:
    ciphertext, ref = _ref(b"hello")
    obj = ref.to_json()
    assert obj["v"] == "v2" and obj["url"] == "mxc://hs.example/AbC123"
    assert obj["key"] == {"kty": "oct", "key_ops": ["encrypt", "decrypt"], "alg": "A256CTR",
                          "k": ref.key, "ext": True}
    assert "=" not in ref.key and "+" not in ref.key and "/" not in ref.key  # url-safe, unpadded
    iv = base64.b64decode(ref.iv + "==")
    assert len(iv) == 16 and iv[8:] == b"\x00" * 8  # low 64 bits zero (the counter)
    assert len(base64.b64decode(ref.sha256 + "=")) == 32 and "=" not in ref.sha256
    assert len(ciphertext) == 5
    assert att.parse_file(obj) == ref


@settings(max_examples=40, deadline=None)
@given(st.binary(max_size=4096))
def test_round_trip_and_nio_decrypts_it(data: bytes) -> None:
    ciphertext, ref = _ref(data)
    assert att.decrypt(ciphertext, ref) == data
    assert decrypt_attachment(ciphertext, ref.key, ref.sha256, ref.iv) == data


@settings(max_examples=40, deadline=None)
@given(st.binary(min_size=1, max_size=512), st.data())
def test_a_changed_ciphertext_byte_is_refused(data: bytes, draw: st.DataObject) -> None:
    ciphertext, ref = _ref(data)
    i = draw.draw(st.integers(0, len(ciphertext) - 1))
    bad = bytearray(ciphertext)
    bad[i] ^= 1 + draw.draw(st.integers(0, 254))
    with pytest.raises(FnError) as exc:
        att.decrypt(bytes(bad), ref)
    assert exc.value.code == "attachment_hash_mismatch"


@pytest.mark.parametrize(
    "mutate",
    [
        lambda o: o.pop("v"),
        lambda o: o.update(v="v1"),
        lambda o: o.update(url="https://evil/x"),
        lambda o: o["key"].update(alg="A128CTR"),
        lambda o: o["key"].update(k="short"),
        lambda o: o.update(iv="!!"),
        lambda o: o["hashes"].pop("sha256"),
        lambda o: o.update(key="k"),
    ],
)
def test_malformed_file_objects_are_refused(mutate: object) -> None:
    _, ref = _ref(b"x")
    obj = ref.to_json()
    mutate(obj)  # type: ignore[operator]
    with pytest.raises(FnError) as exc:
        att.parse_file(obj)
    assert exc.value.code == "attachment_invalid"


def test_binary_and_names() -> None:
    assert att.is_binary(b"a\x00b") and att.is_binary(b"\xff\xfe") and not att.is_binary("é\n".encode())
    assert att.safe_name("../../etc/pa\nss wd") == "pa_ss wd"
    assert att.safe_name("") == "file" and len(att.safe_name("x" * 999)) == 255
    assert att.mxc_parts("mxc://localhost:8008/abc_D-1") == ("localhost:8008", "abc_D-1")
    with pytest.raises(FnError):
        att.mxc_parts("mxc://host/../x")


def test_file_message_replies() -> None:
    _, ref = _ref(b"abc")
    content = att.file_message(name="a.bin", data_size=3, mimetype="application/octet-stream", file=ref,
                               reply_to="$cmd")
    assert content["msgtype"] == "m.file"
    assert content["info"] == {"size": 3, "mimetype": "application/octet-stream"}
    assert content["m.relates_to"] == {"m.in_reply_to": {"event_id": "$cmd"}} and "url" not in content
