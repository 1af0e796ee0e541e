"""Sealed enrollment secrets: only the device key opens them; any changed byte is refused."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nacl.signing import SigningKey

from meshagents.errors import FnError
from meshagents.trust.sealing import open_secrets, seal_answer, seal_secrets, unseal_answer
from meshagents.trust.signing import public_b64

pytestmark = pytest.mark.unit

DEVICE = SigningKey.generate()


def test_round_trip_and_wrong_key() -> None:
    sealed = seal_secrets(public_b64(DEVICE), {"matrix_password": "s3cret", "preshared_key": "k"})
    assert "s3cret" not in sealed
    assert open_secrets(DEVICE, sealed) == {"matrix_password": "s3cret", "preshared_key": "k"}
    with pytest.raises(FnError) as err:
        open_secrets(SigningKey.generate(), sealed)
    assert err.value.code == "enroll_sealed_invalid"


def test_answer_moves_secrets_into_the_box_and_back() -> None:
    # Secrets long enough (and with characters base64 has not) that random ciphertext
    # cannot hold them by chance: two-letter ones did, about one run in a few hundred.
    psk, pw = "psk:not-in-base64!", "pw:not-in-base64!"
    answer = {"device_id": "d", "preshared_key": psk, "matrix": {"user_id": "@d:h", "password": pw}}
    sealed = seal_answer(answer, public_b64(DEVICE))
    assert sealed["preshared_key"] is None and "password" not in sealed["matrix"]
    assert psk not in str(sealed) and pw not in str(sealed)
    back, was = unseal_answer(sealed, DEVICE)
    assert was and back == answer
    assert unseal_answer({"device_id": "d"}, DEVICE) == ({"device_id": "d"}, False)
    assert "sealed" not in seal_answer({"preshared_key": None, "matrix": None}, public_b64(DEVICE))
    with pytest.raises(FnError):
        unseal_answer({**sealed, "sealed": {"scheme": "rot13", "box": "x"}}, DEVICE)


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=0), st.integers(1, 255))
def test_any_changed_byte_is_refused(where: int, flip: int) -> None:
    raw = bytearray(base64.b64decode(seal_secrets(public_b64(DEVICE), {"matrix_password": "pw"})))
    raw[where % len(raw)] ^= flip
    with pytest.raises(FnError):
        open_secrets(DEVICE, base64.b64encode(bytes(raw)).decode())


def test_a_bad_device_key_is_a_clear_error() -> None:
    with pytest.raises(FnError) as err:
        seal_secrets("A" * 43 + "=", {"x": 1})  # not a point on the curve
    assert err.value.code == "invalid_key"
