"""Operator key rotation: statements signed by both keys, chains, forks, re-signed manifests."""

from __future__ import annotations

from pathlib import Path

import pytest
from nacl.signing import SigningKey

from meshagents.errors import FnError
from meshagents.trust import manifest as M
from meshagents.trust.keystore import OPERATOR_KEY, FileKeyStore, init_signing_key, load_signing_key
from meshagents.trust.rotation import (
    RotationLog,
    current_operator_key,
    follow,
    make_statement,
    rotate_operator_key,
    verify_statement,
)
from meshagents.trust.signing import public_b64
from tests.testbed.trust_keys import manifest_body

pytestmark = pytest.mark.unit


def test_chain() -> None:
    a, b, c = (SigningKey.generate() for _ in range(3))
    s1, s2 = make_statement(a, b), make_statement(b, c)
    assert follow(public_b64(a), [s2, s1]) == public_b64(c)
    assert follow(public_b64(b), [s1, s2]) == public_b64(c)
    assert follow(public_b64(a), []) == public_b64(a)


def test_fork_and_forgery_refused() -> None:
    a, b, c = (SigningKey.generate() for _ in range(3))
    with pytest.raises(FnError, match="rotation_conflict"):
        follow(public_b64(a), [make_statement(a, b), make_statement(a, c)])
    forged = make_statement(a, b).model_dump(mode="json")
    forged["new_key"] = public_b64(c)
    with pytest.raises(FnError, match="rotation_invalid"):
        verify_statement(forged)
    only_new = make_statement(c, b).model_dump(mode="json")  # signed by c, claims to come from a
    only_new["old_key"] = public_b64(a)
    with pytest.raises(FnError, match="rotation_invalid"):
        follow(public_b64(a), [only_new])
    with pytest.raises(FnError, match="rotation_invalid"):
        follow(public_b64(a), [make_statement(a, b), make_statement(b, a)])


def test_rotate_in_the_file_store(state_dir: Path) -> None:
    store = FileKeyStore()
    old, _ = init_signing_key(OPERATOR_KEY, store)
    from tests.testbed.trust_keys import Keys

    keys = Keys()
    keys.operator = old
    keys.op_pub = public_b64(old)
    signed = M.sign(manifest_body(keys, serial=4), old)
    statement, new = rotate_operator_key(store, reason="yearly")
    assert statement.old_key == public_b64(old) and statement.new_key == public_b64(new)
    assert public_b64(load_signing_key(OPERATOR_KEY, store)) == public_b64(new)
    assert RotationLog().load()[0].reason == "yearly"
    assert current_operator_key() == public_b64(new)
    with pytest.raises(FnError, match="manifest_invalid_signature"):
        M.verify(signed.model_dump(mode="json"), current_operator_key())
    resigned = M.resign(signed, new)
    assert resigned.serial == 5
    assert M.verify(resigned.model_dump(mode="json"), current_operator_key()).serial == 5
    # A second rotation keeps the chain; the pinned root is still the first key.
    rotate_operator_key(store)
    assert current_operator_key() == public_b64(load_signing_key(OPERATOR_KEY, store))
    assert len(RotationLog().load()) == 2


def test_repin_after_compromise(state_dir: Path) -> None:
    from meshagents.trust.rotation import pin_operator_key

    a, b, c = (SigningKey.generate() for _ in range(3))
    assert pin_operator_key(public_b64(a))
    RotationLog().append(make_statement(a, b))
    assert current_operator_key() == public_b64(b)
    assert not pin_operator_key(public_b64(c))
    assert pin_operator_key(public_b64(c), replace=True)
    assert current_operator_key() == public_b64(c) and RotationLog().load() == []
