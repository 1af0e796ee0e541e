"""Operator sessions: a signed session cookie and a CSRF token per session.

    store = SessionStore(secret, ttl_s=12 * 3600)
    cookie = store.create() -> str            # value of the session cookie (sid.signature)
    session = store.get(cookie, now) -> Session | None   # bad signature / unknown / expired: None
    store.check_csrf(session, form_value) -> bool         # constant-time
    store.drop(cookie)

The cookie carries only a random session id and its HMAC-SHA256 under a secret made at
start (or given), so a forged or edited cookie is refused before any lookup; the
session itself (its CSRF token, expiry) lives in this process. A restart logs everyone
out, which is the safe default for an operator console. The web layer sets the cookie
``HttpOnly`` (no script reads it) and ``SameSite=Strict`` (no other site's page sends
it), and every POST must also carry the session's CSRF token.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

COOKIE = "mad_session"


@dataclass
class Session:
    sid: str
    csrf: str
    created: float
    expires: float


def _sign(secret: bytes, sid: str) -> str:
    mac = hmac.new(secret, sid.encode("ascii"), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).decode().rstrip("=")


class SessionStore:
    def __init__(
        self, secret: bytes | None = None, ttl_s: float = 12 * 3600, max_sessions: int = 1000
    ) -> None:
        self.secret = secret or secrets.token_bytes(32)
        self.ttl_s = ttl_s
        self.max_sessions = max_sessions
        self._sessions: dict[str, Session] = {}

    def create(self, now: float | None = None) -> str:
        now = time.time() if now is None else now
        self._expire(now)
        if len(self._sessions) >= self.max_sessions:  # keep memory bounded: the oldest goes
            oldest = min(self._sessions.values(), key=lambda s: s.created)
            self._sessions.pop(oldest.sid, None)
        sid = secrets.token_urlsafe(24)
        self._sessions[sid] = Session(sid, secrets.token_urlsafe(24), now, now + self.ttl_s)
        return f"{sid}.{_sign(self.secret, sid)}"

    def get(self, cookie: str | None, now: float | None = None) -> Session | None:
        if not cookie or "." not in cookie or len(cookie) > 200:
            return None
        sid, _, sig = cookie.partition(".")
        try:
            expected = _sign(self.secret, sid)
        except UnicodeEncodeError:
            return None
        if not hmac.compare_digest(sig.encode(), expected.encode()):
            return None
        session = self._sessions.get(sid)
        now = time.time() if now is None else now
        if session is None or session.expires <= now:
            self._sessions.pop(sid, None)
            return None
        return session

    def drop(self, cookie: str | None) -> None:
        session = self.get(cookie)
        if session is not None:
            self._sessions.pop(session.sid, None)

    @staticmethod
    def check_csrf(session: Session, value: str | None) -> bool:
        return bool(value) and hmac.compare_digest(str(value).encode(), session.csrf.encode())

    def _expire(self, now: float) -> None:
        for sid in [s.sid for s in self._sessions.values() if s.expires <= now]:
            self._sessions.pop(sid, None)

    def __len__(self) -> int:
        return len(self._sessions)
