"""Operator-signed confirmation of a new Matrix master key: any change is refused."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from nacl.signing import SigningKey

from meshagents.errors import FnError
from meshagents.matrix.client import ClientConfig, MatrixClient
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


def test_client_pins_a_confirmed_identity(tmp_path: Path) -> None:
    """The trust policy's side (no server needed): only a newer statement by the operator
    key, for an operator, moves the pin; it survives a restart."""
    cfg = ClientConfig(
        homeserver="http://127.0.0.1:9", user_id="@bot:hs", password="p", store_dir=tmp_path,
        operators=("@op:hs",), identity_keys=lambda: (public_b64(OP),),
    )  # fmt: skip
    client = MatrixClient(cfg)
    client.pending_identities["@op:hs"] = "NEW"
    client._accept_identity(make_statement(OP, "@op:hs", "NEW", now=10))
    assert client._pin("@op:hs") == "NEW" and client.pending_identities == {}
    client._accept_identity(make_statement(OP, "@op:hs", "OLD", now=5))  # older: ignored
    client._accept_identity(make_statement(OTHER, "@op:hs", "EVIL", now=20))  # not the operator key
    client._accept_identity(make_statement(OP, "@eve:hs", "EVE", now=30))  # not an operator
    assert client._pin("@op:hs") == "NEW" and client._pin("@eve:hs") is None
    assert MatrixClient(cfg)._pin("@op:hs") == "NEW"
    assert (tmp_path / "identities.json").stat().st_mode & 0o777 == 0o600
