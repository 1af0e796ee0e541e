"""Operator-signed confirmation of a new Matrix master key: any change is refused."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from nacl.signing import SigningKey

from meshagents.errors import FnError
from meshagents.matrix.identity import make_statement, verify_statement
from meshagents.trust.signing import public_b64

OP = SigningKey(bytes(32))
OTHER = SigningKey(bytes([1]) * 32)


def test_round_trip() -> None:
    st_ = make_statement(OP, "@op:hs", "MASTERKEY", now=1000)
    got = verify_statement(st_, [public_b64(OTHER), public_b64(OP)])
    assert (got.user_id, got.master_key, got.issued_at) == ("@op:hs", "MASTERKEY", 1000)
    assert got.signed_by == public_b64(OP)


def test_other_key_refused() -> None:
    with pytest.raises(FnError) as exc:
        verify_statement(make_statement(OTHER, "@op:hs", "M", now=1), [public_b64(OP)])
    assert exc.value.code == "identity_statement_invalid"


@given(st.sampled_from(["user_id", "master_key", "issued_at", "type"]), st.data())
def test_any_edit_refused(field: str, data: st.DataObject) -> None:
    stmt = make_statement(OP, "@op:hs", "MASTERKEY", now=1000)
    value = {"user_id": "@evil:hs", "master_key": "OTHERKEY", "issued_at": 1001, "type": "x"}[field]
    with pytest.raises(FnError):
        verify_statement({**stmt, field: value}, [public_b64(OP)])
    with pytest.raises(FnError):
        verify_statement({**stmt, "extra": data.draw(st.integers())}, [public_b64(OP)])
