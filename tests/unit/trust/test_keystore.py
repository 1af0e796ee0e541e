"""File key store: private modes, no clobbering, bad names refused, FN_KEYSTORE choice."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from meshagents.errors import FnError
from meshagents.trust.keystore import (
    OPERATOR_KEY,
    FileKeyStore,
    PassKeyStore,
    init_signing_key,
    load_signing_key,
    open_keystore,
    wg_preshared_name,
)

pytestmark = pytest.mark.unit


def test_modes_and_round_trip(state_dir: Path) -> None:
    store = FileKeyStore()
    key, created = init_signing_key(OPERATOR_KEY, store)
    assert created
    again, created = init_signing_key(OPERATOR_KEY, store)
    assert not created and bytes(again) == bytes(key)
    path = state_dir / "keys" / "operator" / "ed25519"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE((state_dir / "keys").stat().st_mode) == 0o700
    assert stat.S_IMODE((state_dir / "keys" / "operator").stat().st_mode) == 0o700
    assert not list((state_dir / "keys" / "operator").glob(".*tmp"))


def test_no_clobber_and_overwrite(state_dir: Path) -> None:
    store = FileKeyStore()
    name = wg_preshared_name("dev-0001")
    store.put(name, b"a" * 32)
    with pytest.raises(FnError, match="key_exists"):
        store.put(name, b"b" * 32)
    store.put(name, b"b" * 32, overwrite=True)
    assert store.get(name) == b"b" * 32


@pytest.mark.parametrize("name", ["../x", "operator/../../etc", "/abs", "Operator/x", "a//b", "", "a/"])
def test_bad_names(state_dir: Path, name: str) -> None:
    with pytest.raises(FnError, match="keystore_invalid_name"):
        FileKeyStore().get(name)


def test_world_readable_key_refused(state_dir: Path) -> None:
    store = FileKeyStore()
    init_signing_key(OPERATOR_KEY, store)
    os.chmod(state_dir / "keys" / "operator" / "ed25519", 0o644)
    with pytest.raises(FnError, match="keystore_error"):
        load_signing_key(OPERATOR_KEY, store)


def test_missing_key(state_dir: Path) -> None:
    with pytest.raises(FnError, match="key_missing"):
        load_signing_key(OPERATOR_KEY, FileKeyStore())


def test_choice(state_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert open_keystore().kind == "file"
    monkeypatch.setenv("FN_KEYSTORE", "pass")
    assert isinstance(open_keystore(), PassKeyStore)
    monkeypatch.setenv("FN_KEYSTORE", "vault")
    with pytest.raises(FnError, match="keystore_error"):
        open_keystore()
