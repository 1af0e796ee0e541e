"""Where private keys live: a 0600 file store in the state directory, or `pass`.

Public API::

    OPERATOR_KEY = "operator/ed25519"; CONTROLLER_KEY = "controller/ed25519"
    DEVICE_KEY = "device/ed25519";     wg_preshared_name(device_id) -> "wg/preshared/<id>"
    open_keystore(kind=None) -> KeyStore          # kind or FN_KEYSTORE: "file" (default) | "pass"
    KeyStore.get(name) -> bytes | None / .put(name, secret, *, overwrite=False) / .exists(name)
    FileKeyStore(root=None), PassKeyStore(store_dir=None, gnupghome=None)
    load_signing_key(name, store=None) -> SigningKey          # FnError("key_missing")
    init_signing_key(name, store=None) -> (SigningKey, created: bool)

Secrets are stored as one line of standard base64 (the 32-byte ed25519 seed, or a
WireGuard key). The file backend writes ``<state>/keys/<name>`` with mode 0600 under
0700 directories, via a temporary file, fsync and rename, so a crash never leaves a
half-written key. The pass backend shells out to ``pass`` (never through a shell;
the secret goes over stdin, never argv) and honours PASSWORD_STORE_DIR/GNUPGHOME.
Errors: ``keystore_invalid_name``, ``keystore_error``, ``key_exists``, ``key_missing``.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import subprocess
from pathlib import Path
from typing import Protocol

from nacl.signing import SigningKey
from nacl.utils import random as random_bytes

from meshagents.errors import FnError
from meshagents.state import state_dir

OPERATOR_KEY = "operator/ed25519"
CONTROLLER_KEY = "controller/ed25519"
DEVICE_KEY = "device/ed25519"

_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.\-]*(/[a-z0-9][a-z0-9_.\-]*)*$")


def wg_preshared_name(device_id: str) -> str:
    return check_name(f"wg/preshared/{device_id}")


def check_name(name: str) -> str:
    if not _NAME_RE.fullmatch(name) or ".." in name or len(name) > 200:
        raise FnError("keystore_invalid_name", f"invalid key name {name!r}")
    return name


def _encode(secret: bytes) -> str:
    return base64.b64encode(secret).decode("ascii")


def _decode(text: str, name: str) -> bytes:
    try:
        return base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise FnError("keystore_error", f"key {name!r} is not base64") from exc


class KeyStore(Protocol):
    kind: str

    def get(self, name: str) -> bytes | None: ...

    def put(self, name: str, secret: bytes, *, overwrite: bool = False) -> None: ...

    def exists(self, name: str) -> bool: ...


class FileKeyStore:
    """Keys as 0600 files under ``<state>/keys`` (the default backend)."""

    kind = "file"

    def __init__(self, root: Path | None = None) -> None:
        self.root = root if root is not None else state_dir() / "keys"

    def _path(self, name: str) -> Path:
        return self.root / check_name(name)

    def exists(self, name: str) -> bool:
        return self._path(name).is_file()

    def _mkdir_private(self, directory: Path) -> None:
        # Every directory from the store root down is 0700, whatever the umask.
        missing = []
        d = directory
        while not d.exists():
            missing.append(d)
            if d == self.root or d.parent == d:
                break
            d = d.parent
        for d in reversed(missing):
            d.mkdir(mode=0o700, exist_ok=True)
            os.chmod(d, 0o700)

    def get(self, name: str) -> bytes | None:
        path = self._path(name)
        try:
            st = path.stat()
        except FileNotFoundError:
            return None
        if st.st_mode & 0o077:
            raise FnError("keystore_error", f"{path} is readable by others (mode {oct(st.st_mode & 0o777)})")
        return _decode(path.read_text(encoding="ascii"), name)

    def put(self, name: str, secret: bytes, *, overwrite: bool = False) -> None:
        path = self._path(name)
        if path.exists() and not overwrite:
            raise FnError("key_exists", f"key {name!r} already exists")
        self._mkdir_private(path.parent)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, (_encode(secret) + "\n").encode("ascii"))
            os.fsync(fd)
        finally:
            os.close(fd)
        if overwrite:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)  # fails if someone created it meanwhile: never clobber a key
            except FileExistsError as exc:
                raise FnError("key_exists", f"key {name!r} already exists") from exc
            finally:
                tmp.unlink(missing_ok=True)
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


class PassKeyStore:
    """Keys in the `pass` password store (``pass show/insert``), GPG-encrypted."""

    kind = "pass"

    def __init__(self, store_dir: Path | None = None, gnupghome: Path | None = None) -> None:
        self.env = dict(os.environ)
        if store_dir is not None:
            self.env["PASSWORD_STORE_DIR"] = str(store_dir)
        if gnupghome is not None:
            self.env["GNUPGHOME"] = str(gnupghome)

    def _run(self, args: list[str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        try:
            return subprocess.run(
                ["pass", *args], input=stdin, capture_output=True, text=True, env=self.env, timeout=60
            )
        except FileNotFoundError as exc:
            raise FnError("keystore_error", "`pass` is not installed") from exc
        except subprocess.TimeoutExpired as exc:
            raise FnError("keystore_error", "`pass` timed out") from exc

    def _store_path(self) -> Path:
        return Path(self.env.get("PASSWORD_STORE_DIR") or Path.home() / ".password-store")

    def exists(self, name: str) -> bool:
        return (self._store_path() / f"{check_name(name)}.gpg").is_file()

    def get(self, name: str) -> bytes | None:
        if not self.exists(name):
            return None
        res = self._run(["show", name])
        if res.returncode != 0:
            # stderr of pass/gpg names files and keys, never the secret.
            raise FnError("keystore_error", f"pass show {name} failed: {res.stderr.strip()[:300]}")
        return _decode(res.stdout, name)

    def put(self, name: str, secret: bytes, *, overwrite: bool = False) -> None:
        if self.exists(name) and not overwrite:
            raise FnError("key_exists", f"key {name!r} already exists")
        res = self._run(["insert", "-m", "-f", check_name(name)], stdin=_encode(secret) + "\n")
        if res.returncode != 0:
            raise FnError("keystore_error", f"pass insert {name} failed: {res.stderr.strip()[:300]}")


def open_keystore(kind: str | None = None) -> KeyStore:
    """The key store chosen by ``kind`` or ``FN_KEYSTORE`` (file | pass)."""
    kind = kind or os.environ.get("FN_KEYSTORE") or "file"
    if kind == "file":
        return FileKeyStore()
    if kind == "pass":
        return PassKeyStore()
    raise FnError("keystore_error", f"FN_KEYSTORE={kind!r}: expected 'file' or 'pass'")


def load_signing_key(name: str, store: KeyStore | None = None) -> SigningKey:
    store = store or open_keystore()
    seed = store.get(name)
    if seed is None:
        raise FnError("key_missing", f"no key {name!r} in the {store.kind} key store")
    if len(seed) != 32:
        raise FnError("keystore_error", f"key {name!r} is not a 32-byte ed25519 seed")
    return SigningKey(seed)


def init_signing_key(name: str, store: KeyStore | None = None) -> tuple[SigningKey, bool]:
    """The ed25519 key ``name``, created if missing. Returns (key, created)."""
    store = store or open_keystore()
    seed = store.get(name)
    if seed is not None:
        return load_signing_key(name, store), False
    seed = random_bytes(32)
    try:
        store.put(name, seed)
    except FnError as exc:
        if exc.code != "key_exists":
            raise
        return load_signing_key(name, store), False
    return SigningKey(seed), True
