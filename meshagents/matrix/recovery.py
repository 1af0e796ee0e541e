"""The operator's recovery key on the homeserver: secret storage and key backup (I/O shell).

    acct = Account(homeserver, "@operator:hub.mesh", password, cross_signing_path)
    setup = create_recovery(acct, passphrase=None)   # -> Recovery(recovery_key, key_id, backup_version)
    setup = rotate_recovery(acct)                    # new key; secrets re-encrypted; old key useless
    recovery_status(acct)                            # -> {"key_id", "secrets": [...], "backup_version"}
    read_seeds(acct, recovery_key)                   # -> CrossSigningSeeds in secret storage now
    confirm_identity(acct, operator_signing_key, ["#operator-approvals:hub.mesh"])
                                     # -> {"master_key", "statement", "event_ids"}: after a reset

What goes into secret storage (see ``secretstore`` for the bytes): the three
cross-signing seeds from ``cross_signing_path`` (the file every project client of the
account shares) and the key-backup private key, kept 0600 beside it as
``megolm_backup.json`` (a rotation re-encrypts it; it does not change the backup).
``create`` refuses when a default key exists already (``recovery_key_exists``), and both
refuse seeds that are not the identity the server publishes (``cross_signing_mismatch``):
storing those would make Element sign its session with keys nobody trusts.

Each call logs in with the password as a short-lived device and logs it out at the end.
The recovery key is returned once and stored nowhere by this module.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import httpx

from meshagents.errors import FnError
from meshagents.fsutil import read_json, write_private
from meshagents.matrix import crosssign, identity
from meshagents.matrix import secretstore as ss

if TYPE_CHECKING:
    from nacl.signing import SigningKey


@dataclass(frozen=True)
class Account:
    homeserver: str
    user_id: str
    password: str = field(repr=False)
    cross_signing_path: Path

    @property
    def backup_key_path(self) -> Path:
        return self.cross_signing_path.with_name("megolm_backup.json")


@dataclass(frozen=True)
class Recovery:
    recovery_key: str = field(repr=False)
    key_id: str
    backup_version: str


class _Session:
    def __init__(self, http: httpx.Client, user_id: str) -> None:
        self.http = http
        self.user_id = user_id

    def _url(self, event_type: str) -> str:
        return f"/_matrix/client/v3/user/{quote(self.user_id)}/account_data/{quote(event_type)}"

    def get_data(self, event_type: str) -> dict[str, Any] | None:
        r = self.http.get(self._url(event_type))
        if r.status_code == 404:
            return None
        _check(r, f"account data {event_type}")
        data: dict[str, Any] = r.json()
        return data

    def put_data(self, event_type: str, content: dict[str, Any]) -> None:
        _check(self.http.put(self._url(event_type), json=content), f"account data {event_type}")

    def master_key(self) -> str | None:
        r = self.http.post("/_matrix/client/v3/keys/query", json={"device_keys": {self.user_id: []}})
        _check(r, "keys/query")
        obj = r.json().get("master_keys", {}).get(self.user_id) or {}
        keys = list((obj.get("keys") or {}).values())
        return str(keys[0]) if len(keys) == 1 else None

    def room_id(self, room: str) -> str:
        if not room.startswith("#"):
            return room
        r = self.http.get(f"/_matrix/client/v3/directory/room/{quote(room)}")
        _check(r, f"room alias {room}")
        return str(r.json()["room_id"])

    def send(self, room_id: str, event_type: str, content: dict[str, Any]) -> str:
        path = f"/_matrix/client/v3/rooms/{quote(room_id)}/send/{quote(event_type)}/{uuid.uuid4().hex}"
        r = self.http.put(path, json=content)
        _check(r, f"send to {room_id}")
        return str(r.json()["event_id"])

    def backup_version(self) -> dict[str, Any] | None:
        r = self.http.get("/_matrix/client/v3/room_keys/version")
        if r.status_code == 404:
            return None
        _check(r, "room_keys/version")
        data: dict[str, Any] = r.json()
        return data

    def create_backup(self, body: dict[str, Any]) -> str:
        r = self.http.post("/_matrix/client/v3/room_keys/version", json=body)
        _check(r, "room_keys/version (create)")
        return str(r.json()["version"])


def _check(r: httpx.Response, what: str) -> None:
    if r.status_code != 200:
        try:
            err = r.json().get("errcode", "")
        except ValueError:
            err = ""
        raise FnError("homeserver_error", f"{what}: HTTP {r.status_code} {err}".strip())


@contextmanager
def _session(acct: Account) -> Iterator[_Session]:
    try:
        with httpx.Client(base_url=acct.homeserver.rstrip("/"), timeout=30) as http:
            r = http.post(
                "/_matrix/client/v3/login",
                json={
                    "type": "m.login.password",
                    "identifier": {"type": "m.id.user", "user": acct.user_id},
                    "password": acct.password,
                    "initial_device_display_name": "meshagents recovery-key",
                },
            )
            if r.status_code != 200:
                raise FnError("matrix_login_failed", f"login of {acct.user_id}: HTTP {r.status_code}")
            http.headers["Authorization"] = f"Bearer {r.json()['access_token']}"
            try:
                yield _Session(http, acct.user_id)
            finally:
                http.post("/_matrix/client/v3/logout", json={})
    except httpx.HTTPError as exc:
        raise FnError("homeserver_unreachable", f"{acct.homeserver}: {exc}") from exc


def _seeds(acct: Account) -> crosssign.CrossSigningSeeds:
    data = read_json(acct.cross_signing_path)
    if data is None:
        raise FnError("cross_signing_missing", f"no cross-signing seeds at {acct.cross_signing_path}")
    return crosssign.CrossSigningSeeds.from_json(data)


def _backup_key(acct: Account) -> bytes:
    data = read_json(acct.backup_key_path)
    if data is not None:
        return crosssign.b64u_decode(str(data["private_key"]))
    key = os.urandom(32)
    write_private(acct.backup_key_path, {"private_key": crosssign.b64u(key)})
    return key


def _store(acct: Account, s: _Session, passphrase: str | None) -> Recovery:
    seeds = _seeds(acct)
    published = s.master_key()
    if published != seeds.master_public:
        raise FnError(
            "cross_signing_mismatch",
            f"the server's master key for {acct.user_id} ({published}) is not the one in "
            f"{acct.cross_signing_path}; start a project client once, or confirm the new identity",
        )
    backup = _backup_key(acct)
    current = s.backup_version()
    if current and (current.get("auth_data") or {}).get("public_key") == ss.backup_public_key(backup):
        version = str(current["version"])
    else:
        version = s.create_backup(ss.backup_version_body(acct.user_id, backup, seeds))
    key = ss.StorageKey.generate(passphrase=passphrase)
    s.put_data(ss.KEY_EVENT_PREFIX + key.key_id, key.description)
    stored = {**ss.cross_signing_secrets(seeds), ss.BACKUP_SECRET: crosssign.b64u(backup)}
    for name, secret in stored.items():
        s.put_data(name, ss.secret_content(secret, key, name))
    s.put_data(ss.DEFAULT_KEY_EVENT, {"key": key.key_id})
    return Recovery(key.recovery_key, key.key_id, version)


def create_recovery(acct: Account, passphrase: str | None = None) -> Recovery:
    """Secret storage with a new recovery key, the key backup; refuses when one exists."""
    with _session(acct) as s:
        default = s.get_data(ss.DEFAULT_KEY_EVENT)
        if default and default.get("key"):
            raise FnError(
                "recovery_key_exists",
                "secret storage already has a recovery key: `./fn operator recovery-key rotate` replaces it",
            )
        return _store(acct, s, passphrase)


def rotate_recovery(acct: Account, passphrase: str | None = None) -> Recovery:
    """A new recovery key; every secret re-encrypted under it alone; the old key's
    description blanked, so the old recovery key neither matches nor decrypts anything."""
    with _session(acct) as s:
        old = (s.get_data(ss.DEFAULT_KEY_EVENT) or {}).get("key")
        out = _store(acct, s, passphrase)
        if isinstance(old, str) and old and old != out.key_id:
            s.put_data(ss.KEY_EVENT_PREFIX + old, {})
        return out


def recovery_status(acct: Account) -> dict[str, Any]:
    """What is stored (names and ids only, no secret)."""
    with _session(acct) as s:
        key_id = (s.get_data(ss.DEFAULT_KEY_EVENT) or {}).get("key")
        names = [*ss.CROSS_SIGNING_SECRETS, ss.BACKUP_SECRET]
        present = [
            n for n in names if key_id and key_id in ((s.get_data(n) or {}).get("encrypted") or {})
        ]
        backup = s.backup_version()
        return {
            "key_id": key_id,
            "secrets": present,
            "backup_version": backup.get("version") if backup else None,
            "master_key": s.master_key(),
        }


def confirm_identity(
    acct: Account, key: SigningKey, rooms: Sequence[str], master_key: str | None = None
) -> dict[str, Any]:
    """Sign the operator's *current* master key (as the server publishes it) with the
    operator key and post the statement in ``rooms`` (plain: the signature carries the
    trust). ``master_key``: refuse unless the server's key is this one (``identity_mismatch``)."""
    with _session(acct) as s:
        current = s.master_key()
        if current is None:
            raise FnError("cross_signing_missing", f"{acct.user_id} has no master key on the server")
        if master_key is not None and master_key != current:
            raise FnError("identity_mismatch", f"the server's master key is {current}, not {master_key}")
        statement = identity.make_statement(key, acct.user_id, current)
        events = [s.send(s.room_id(room), identity.IDENTITY_EVENT, statement) for room in rooms]
        return {"user_id": acct.user_id, "master_key": current, "statement": statement, "event_ids": events}


def read_seeds(acct: Account, recovery_key: str) -> crosssign.CrossSigningSeeds:
    """The cross-signing seeds secret storage holds now (after a reset in Element, the new
    ones), decrypted with the recovery key; they must be the published identity.
    Errors: ``bad_recovery_key``, ``secret_storage_missing``, ``cross_signing_mismatch``."""
    key = ss.decode_recovery_key(recovery_key)
    with _session(acct) as s:
        key_id = (s.get_data(ss.DEFAULT_KEY_EVENT) or {}).get("key")
        description = s.get_data(ss.KEY_EVENT_PREFIX + str(key_id)) if key_id else None
        if not key_id or not description:
            raise FnError("secret_storage_missing", f"{acct.user_id} has no secret storage")
        if not ss.key_matches(key, description):
            raise FnError("bad_recovery_key", "this recovery key is not the account's current one")
        secrets = []
        for name in ss.CROSS_SIGNING_SECRETS:
            content = s.get_data(name)
            if content is None:
                raise FnError("secret_storage_missing", f"secret storage holds no {name}")
            secrets.append(crosssign.b64u_decode(ss.read_secret(content, str(key_id), key, name)))
        seeds = crosssign.CrossSigningSeeds(*secrets)
        if s.master_key() != seeds.master_public:
            raise FnError("cross_signing_mismatch", "secret storage's master key is not the published one")
        return seeds
