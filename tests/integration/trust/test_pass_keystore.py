"""The `pass` key store backend against real pass + gpg with a throwaway key."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from meshagents.errors import FnError
from meshagents.state import project_root
from meshagents.trust.keystore import (
    OPERATOR_KEY,
    PassKeyStore,
    init_signing_key,
    load_signing_key,
    wg_preshared_name,
)
from meshagents.trust.signing import public_b64

from .conftest import PassEnv

pytestmark = pytest.mark.integration


def test_pass_backend_round_trip(pass_store: PassEnv) -> None:
    store = PassKeyStore(pass_store.store_dir, pass_store.gnupghome)
    key, created = init_signing_key(OPERATOR_KEY, store)
    assert created
    assert (pass_store.store_dir / "operator" / "ed25519.gpg").is_file()
    assert bytes(load_signing_key(OPERATOR_KEY, store)) == bytes(key)
    assert init_signing_key(OPERATOR_KEY, store)[1] is False
    psk = wg_preshared_name("dev-0001")
    store.put(psk, b"\x01" * 32)
    assert store.get(psk) == b"\x01" * 32
    with pytest.raises(FnError, match="key_exists"):
        store.put(psk, b"\x02" * 32)
    # The secret is encrypted at rest: the raw seed is not in the file.
    assert bytes(key) not in (pass_store.store_dir / "operator" / "ed25519.gpg").read_bytes()


def test_cli_with_fn_keystore_pass(pass_store: PassEnv, tmp_path: Path) -> None:
    env = dict(os.environ, FN_KEYSTORE="pass", FN_STATE_DIR=str(tmp_path / "state"), **pass_store.env())

    def fn(*args: str) -> dict[str, object]:
        res = subprocess.run(
            [str(project_root() / "fn"), "run", *args],
            env=env,
            capture_output=True,
            text=True,
            check=True,
            cwd=project_root(),
            timeout=120,
        )
        return json.loads(res.stdout)  # type: ignore[no-any-return]

    out = fn("operator_key_init")
    assert out["keystore"] == "pass" and out["created"] is True
    assert not (tmp_path / "state" / "keys").exists()  # nothing on disk outside pass
    signed = fn("capability_manifest_sign", "--manifest", str(project_root() / "docs/examples/manifest.json"))
    assert signed["operator_key"] == out["public_key"]
    path = tmp_path / "signed.json"
    path.write_text(json.dumps(signed))
    assert fn("capability_manifest_verify", "--manifest", str(path))["ok"] is True
    store = PassKeyStore(pass_store.store_dir, pass_store.gnupghome)
    assert public_b64(load_signing_key(OPERATOR_KEY, store)) == out["public_key"]
