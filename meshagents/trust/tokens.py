"""Enrollment tokens: operator-signed, one use, short-lived; compact text and QR code.

Public API::

    create(key, *, device_name, hub_endpoint="", hub_public_key="", profile="default",
           ttl_s=600, now=None, profile_sha256=None, controllers=None, bundle_sha256=None)
        -> (EnrollmentToken, compact: str)
    encode(token) -> str                 # "mat1.<b64url canonical payload>.<b64url signature>"
    decode(compact) -> EnrollmentToken   # structure only; FnError("token_invalid")
    verify(compact, operator_key, store: TokenStore | None, *, now=None, consume=True)
        -> EnrollmentToken               # FnError: token_invalid | token_expired | token_used
    TokenStore(path).used(token_id) / .consume(token_id, expires_at) / .prune(now)
    qr_png(compact, path) / qr_terminal(compact) -> str

Check order: format and signature (``token_invalid``), then time (``token_expired``),
then the one-use store (``token_used``). The payload inside the compact form must be
exactly canonical JSON, so no two texts carry one signature. A token id is kept in
the store until the token's expiry, after which the token is refused as expired
anyway, so pruning cannot re-open it.
"""

from __future__ import annotations

import io
import secrets
import time
from pathlib import Path
from typing import Any

from nacl.signing import SigningKey

from meshagents.errors import FnError
from meshagents.trust.canonical import (
    b64decode,
    b64encode,
    b64url_decode,
    b64url_encode,
    canonical_bytes,
    loads_strict,
)
from meshagents.trust.db import connect
from meshagents.trust.models import EnrollmentToken, parse, parse_exact
from meshagents.trust.signing import TYPE_TOKEN, public_b64, sign_payload, strip_signature, verify_payload

PREFIX = "mat1"
DEFAULT_TTL_S = 600
MAX_COMPACT = 4096


def create(
    key: SigningKey,
    *,
    device_name: str,
    hub_endpoint: str = "",
    hub_public_key: str = "",
    profile: str = "default",
    ttl_s: int = DEFAULT_TTL_S,
    now: int | None = None,
    profile_sha256: str | None = None,
    controllers: list[str] | None = None,
    bundle_sha256: str | None = None,
) -> tuple[EnrollmentToken, str]:
    if ttl_s <= 0:
        raise FnError("bad_usage", "ttl must be positive")
    issued = int(time.time()) if now is None else now
    body = {
        "type": TYPE_TOKEN,
        "token_id": secrets.token_urlsafe(16),
        "device_name": device_name,
        "hub_endpoint": hub_endpoint,
        "hub_public_key": hub_public_key,
        "profile": profile,
        "profile_sha256": profile_sha256,
        "controllers": None if controllers is None else list(dict.fromkeys(controllers)),
        "issued_at": issued,
        "expires_at": issued + ttl_s,
        "operator_key": public_b64(key),
        # the install bundle install.sh must get (signed with the rest; older tokens lack it)
        "bundle_sha256": bundle_sha256,
    }
    body = strip_signature(parse(EnrollmentToken, body, code="token_invalid").model_dump(mode="json"))
    body["signature"] = sign_payload(body, key, TYPE_TOKEN)
    token = parse(EnrollmentToken, body, code="token_invalid")
    return token, encode(token)


def encode(token: EnrollmentToken) -> str:
    if token.signature is None:
        raise FnError("token_invalid", "token is not signed")
    payload = canonical_bytes(strip_signature(token.model_dump(mode="json")))
    return f"{PREFIX}.{b64url_encode(payload)}.{b64url_encode(b64decode(token.signature, size=64))}"


def _split(compact: str) -> dict[str, Any]:
    """The signed payload exactly as sent, with its signature added back (base64)."""
    if not isinstance(compact, str) or len(compact) > MAX_COMPACT:
        raise FnError("token_invalid", "not an enrollment token")
    parts = compact.strip().split(".")
    if len(parts) != 3 or parts[0] != PREFIX:
        raise FnError("token_invalid", "not an enrollment token")
    try:
        payload = loads_strict(b64url_decode(parts[1], what="payload"), require_canonical=True)
        sig = b64url_decode(parts[2], what="signature")
    except FnError as exc:
        raise FnError("token_invalid", exc.message) from exc
    if not isinstance(payload, dict) or len(sig) != 64 or "signature" in payload:
        raise FnError("token_invalid", "malformed token")
    payload["signature"] = b64encode(sig)
    return payload


def decode(compact: str) -> EnrollmentToken:
    """Parse the compact form (no signature check)."""
    return parse(EnrollmentToken, _split(compact), code="token_invalid")


class TokenStore:
    """Token ids already used (persistent)."""

    def __init__(self, path: Path) -> None:
        self.conn = connect(path)
        self.conn.execute(
            "CREATE TABLE IF NOT EXISTS used_tokens"
            " (token_id TEXT PRIMARY KEY, expires_at INTEGER, used_at INTEGER)"
        )

    def used(self, token_id: str) -> bool:
        row = self.conn.execute("SELECT 1 FROM used_tokens WHERE token_id=?", (token_id,)).fetchone()
        return row is not None

    def consume(self, token_id: str, expires_at: int, now: int) -> None:
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            cur = self.conn.execute(
                "INSERT OR IGNORE INTO used_tokens(token_id, expires_at, used_at) VALUES(?, ?, ?)",
                (token_id, expires_at, now),
            )
            if cur.rowcount == 0:
                raise FnError("token_used", "enrollment token already used")
            self.conn.execute("DELETE FROM used_tokens WHERE expires_at < ?", (now,))
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise

    def prune(self, now: int) -> int:
        return self.conn.execute("DELETE FROM used_tokens WHERE expires_at < ?", (now,)).rowcount

    def close(self) -> None:
        self.conn.close()


def verify(
    compact: str,
    operator_key: str,
    store: TokenStore | None,
    *,
    now: int | None = None,
    consume: bool = True,
) -> EnrollmentToken:
    """The token if valid; consumes it (one use) unless ``consume=False``."""
    now = int(time.time()) if now is None else now
    raw = _split(compact)
    # The signature is checked over the payload as sent, before the model fills any default.
    if raw.get("operator_key") != operator_key or not verify_payload(
        raw, raw["signature"], operator_key, TYPE_TOKEN
    ):
        raise FnError("token_invalid", "token signature is not the operator's")
    token = parse_exact(EnrollmentToken, raw, code="token_invalid", deep=False)
    if now >= token.expires_at:
        raise FnError("token_expired", f"token expired at {token.expires_at}", expires_at=token.expires_at)
    if store is not None:
        if consume:
            store.consume(token.token_id, token.expires_at, now)
        elif store.used(token.token_id):
            raise FnError("token_used", "enrollment token already used")
    return token


def _qr(compact: str) -> object:
    import qrcode

    qr = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, border=2)
    qr.add_data(compact)
    qr.make(fit=True)
    return qr


def qr_png(compact: str, path: Path) -> Path:
    """Write the token as a PNG QR code (pure-Python PNG writer, no Pillow needed)."""
    from qrcode.image.pure import PyPNGImage

    qr = _qr(compact)
    img = qr.make_image(image_factory=PyPNGImage)  # type: ignore[attr-defined]
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as fh:
        img.save(fh)
    return path


def qr_terminal(compact: str) -> str:
    """The token as a QR code drawn with text blocks, for a terminal."""
    qr = _qr(compact)
    buf = io.StringIO()
    qr.print_ascii(out=buf, invert=True)  # type: ignore[attr-defined]
    return buf.getvalue()
