"""Fixtures for the trust integration tests: a real `pass` store with a throwaway GPG key.

``pass_store`` yields a :class:`PassEnv` (GNUPGHOME and PASSWORD_STORE_DIR made for
this test, 0700) and kills that home's gpg-agent at teardown, even on failure.
If another area needs ``FN_KEYSTORE=pass`` with a real store, this rig moves to
tests/testbed/.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.testbed.host import require_binary

GPG_PARAMS = """%no-protection
Key-Type: eddsa
Key-Curve: ed25519
Subkey-Type: ecdh
Subkey-Curve: cv25519
Name-Real: meshagents test {suffix}
Name-Email: test-{suffix}@meshagents.invalid
Expire-Date: 1d
%commit
"""


@dataclass(frozen=True)
class PassEnv:
    gnupghome: Path
    store_dir: Path
    fingerprint: str

    def env(self) -> dict[str, str]:
        return {"GNUPGHOME": str(self.gnupghome), "PASSWORD_STORE_DIR": str(self.store_dir)}


@pytest.fixture
def pass_store(tmp_path: Path) -> Iterator[PassEnv]:
    require_binary("pass", "gpg", "gpgconf")
    suffix = os.urandom(3).hex()
    home = Path(f"/tmp/ma-gpg-{suffix}")  # short: gpg-agent's socket path has a length limit
    home.mkdir(mode=0o700)
    store = tmp_path / "password-store"
    env = dict(os.environ, GNUPGHOME=str(home), PASSWORD_STORE_DIR=str(store))
    try:
        params = tmp_path / "gpg-params"
        params.write_text(GPG_PARAMS.format(suffix=suffix))
        subprocess.run(["gpg", "--batch", "--gen-key", str(params)], env=env, check=True, capture_output=True)
        out = subprocess.run(
            ["gpg", "--batch", "--with-colons", "--list-secret-keys"],
            env=env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        fpr = next(line.split(":")[9] for line in out.splitlines() if line.startswith("fpr:"))
        subprocess.run(["pass", "init", fpr], env=env, check=True, capture_output=True)
        yield PassEnv(home, store, fpr)
    finally:
        subprocess.run(["gpgconf", "--kill", "gpg-agent"], env=env, capture_output=True)
        subprocess.run(["rm", "-rf", str(home)], check=False)
