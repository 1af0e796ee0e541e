"""Operator key rotation and the trust anchor verifiers follow.

Public API::

    make_statement(old: SigningKey, new: SigningKey, *, now=None, reason="") -> RotationStatement
    verify_statement(statement: RotationStatement | dict) -> RotationStatement  # FnError("rotation_invalid")
    follow(pinned: str, statements) -> str       # current key; rotation_invalid | rotation_conflict
    RotationLog(path=None)                        # <state>/trust/rotations.json
        .load() -> list[RotationStatement] / .append(statement)
    pin_operator_key(public, path=None, *, replace=False) -> bool  # <state>/trust/operator.pub
    current_operator_key(explicit=None) -> str    # explicit, else pinned key + rotations, else keystore
    rotate_operator_key(store=None, *, reason="", now=None) -> (RotationStatement, SigningKey)

A statement names the old and the new public key and is signed by both private
keys (each signature over the same domain-separated canonical payload). The old
signature proves the holder of the trusted key consents; the new one proves the
new key exists and is held. Verifiers start at the key pinned at enrollment and
follow statements whose ``old_key`` is the current key. Two valid statements from
one key to different new keys are a fork, refused as ``rotation_conflict`` (only a
thief of the old key would make one). Against a compromised key a statement is no
help: see docs/protocol.md (revoke all, re-enroll with a new pinned key).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nacl.signing import SigningKey

from meshagents.errors import FnError
from meshagents.fsutil import write_atomic
from meshagents.state import state_dir
from meshagents.trust.canonical import loads_strict
from meshagents.trust.keystore import OPERATOR_KEY, KeyStore, load_signing_key, open_keystore
from meshagents.trust.models import RotationStatement, parse, parse_exact
from meshagents.trust.signing import TYPE_ROTATION, public_b64, sign_payload, strip_signature, verify_payload


def make_statement(
    old: SigningKey, new: SigningKey, *, now: int | None = None, reason: str = ""
) -> RotationStatement:
    body: dict[str, Any] = {
        "type": TYPE_ROTATION,
        "old_key": public_b64(old),
        "new_key": public_b64(new),
        "issued_at": int(time.time()) if now is None else now,
        "reason": reason,
    }
    body["signatures"] = {
        "old": sign_payload(body, old, TYPE_ROTATION),
        "new": sign_payload(body, new, TYPE_ROTATION),
    }
    return parse(RotationStatement, body, code="rotation_invalid")


def verify_statement(statement: RotationStatement | dict[str, Any]) -> RotationStatement:
    raw = statement.model_dump(mode="json") if isinstance(statement, RotationStatement) else statement
    st = parse_exact(RotationStatement, raw, code="rotation_invalid")
    if st.signatures is None:
        raise FnError("rotation_invalid", "rotation statement is not signed")
    payload = strip_signature(raw)
    if not verify_payload(payload, st.signatures.old, st.old_key, TYPE_ROTATION):
        raise FnError("rotation_invalid", "old key's signature does not verify")
    if not verify_payload(payload, st.signatures.new, st.new_key, TYPE_ROTATION):
        raise FnError("rotation_invalid", "new key's signature does not verify")
    if st.old_key == st.new_key:
        raise FnError("rotation_invalid", "old and new key are the same")
    return st


def follow(pinned: str, statements: Sequence[RotationStatement | dict[str, Any]]) -> str:
    """Walk the chain of valid statements from ``pinned``; the key it ends at."""
    valid = [verify_statement(s) for s in statements]
    current = pinned
    seen = {pinned}
    while True:
        nxt = {s.new_key for s in valid if s.old_key == current}
        if not nxt:
            return current
        if len(nxt) > 1:
            raise FnError("rotation_conflict", f"key {current} was rotated to {len(nxt)} different keys")
        current = nxt.pop()
        if current in seen:
            raise FnError("rotation_invalid", "rotation chain loops back to an earlier key")
        seen.add(current)


class RotationLog:
    """The rotation statements this machine knows, as a JSON array file."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or state_dir() / "trust" / "rotations.json"

    def load(self) -> list[RotationStatement]:
        try:
            data = loads_strict(self.path.read_bytes())
        except FileNotFoundError:
            return []
        if not isinstance(data, list):
            raise FnError("rotation_invalid", f"{self.path} is not a JSON array")
        return [verify_statement(s) for s in data]

    def append(self, statement: RotationStatement) -> None:
        items = [s.model_dump(mode="json") for s in self.load()]
        items.append(verify_statement(statement).model_dump(mode="json"))
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_atomic(self.path, json.dumps(items, indent=2, sort_keys=True) + "\n", mode=0o666)


def pinned_path() -> Path:
    return state_dir() / "trust" / "operator.pub"


def pin_operator_key(public: str, path: Path | None = None, *, replace: bool = False) -> bool:
    """Pin ``public`` as the root of trust if nothing is pinned yet. True if written.

    ``replace=True`` is re-enrollment after a compromise: the new key replaces the old
    root and the known rotation statements are dropped (they start from the old root).
    """
    path = path or pinned_path()
    if path.exists() and not replace:
        return False
    if replace:
        RotationLog().path.unlink(missing_ok=True)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.write_text(public + "\n", encoding="ascii")
    return True


def current_operator_key(explicit: str | None = None) -> str:
    """The operator public key a verifier on this machine trusts now."""
    if explicit:
        return explicit
    path = pinned_path()
    if path.exists():
        return follow(path.read_text(encoding="ascii").strip(), RotationLog().load())
    try:
        return public_b64(load_signing_key(OPERATOR_KEY))
    except FnError as exc:
        raise FnError(
            "operator_key_unknown", "no pinned operator key and no operator key in the key store"
        ) from exc


def rotate_operator_key(
    store: KeyStore | None = None, *, reason: str = "", now: int | None = None
) -> tuple[RotationStatement, SigningKey]:
    """Make a new operator key, a statement signed by old and new, and switch the store over.

    Crash order: the new key is saved (``operator/next``) before the statement that
    names it is published, and the old key is archived (``operator/retired-<id>``)
    before ``operator/ed25519`` is overwritten, so no step loses a private key.
    """
    store = store or open_keystore()
    old = load_signing_key(OPERATOR_KEY, store)
    pin_operator_key(public_b64(old))  # the chain must start somewhere this machine trusts
    new = SigningKey.generate()
    store.put("operator/next", bytes(new), overwrite=True)
    statement = make_statement(old, new, now=now, reason=reason)
    RotationLog().append(statement)
    tag = hashlib.sha256(bytes(old.verify_key)).hexdigest()[:12]
    store.put(f"operator/retired-{tag}", bytes(old), overwrite=True)
    store.put(OPERATOR_KEY, bytes(new), overwrite=True)
    return statement, new
