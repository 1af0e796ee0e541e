"""Synapse's shared-secret registration API (``/_synapse/admin/v1/register``), and
locking a revoked device's account out (``lock_out``: every session ended, its password changed).

Works against the embedded homeserver and against any Synapse whose
``registration_shared_secret`` the operator hands us. Blocking (stdlib HTTP): it is
called from fixtures, functions and setup code, never from inside a sync loop.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import urllib.error
import urllib.request
from typing import Any

from meshagents.errors import FnError


def registration_mac(shared_secret: str, nonce: str, user: str, password: str, admin: bool) -> str:
    """The HMAC-SHA1 Synapse expects: nonce NUL user NUL password NUL admin|notadmin."""
    message = b"\x00".join(
        part.encode() for part in (nonce, user, password, "admin" if admin else "notadmin")
    )
    mac = hmac.new(shared_secret.encode(), message, digestmod=hashlib.sha1)
    return mac.hexdigest()


def _request(
    url: str, body: dict[str, Any] | None = None, timeout: float = 10.0, token: str | None = None
) -> dict[str, Any]:
    data = json.dumps(body).encode() if body is not None else None
    if not url.startswith(("http://", "https://")):
        raise FnError("bad_homeserver_url", f"homeserver URL must be http(s): {url!r}")
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url, data=data, headers=headers)  # noqa: S310
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - scheme checked above
            out: dict[str, Any] = json.loads(resp.read() or b"{}")
            return out
    except urllib.error.HTTPError as exc:
        try:
            err: dict[str, Any] = json.loads(exc.read() or b"{}")
        except ValueError:
            err = {}
        code = err.get("errcode", "")
        if code == "M_USER_IN_USE":
            raise FnError("matrix_user_exists", "that Matrix user already exists") from exc
        raise FnError(
            "matrix_admin_failed", f"homeserver answered {exc.code} {code}: {err.get('error', '')}"
        ) from exc
    except (urllib.error.URLError, OSError) as exc:
        raise FnError("homeserver_unreachable", f"cannot reach {url}: {exc}") from exc


def register_user(
    homeserver_url: str, shared_secret: str, localpart: str, password: str, *, admin: bool = False
) -> dict[str, Any]:
    """Create ``localpart`` with ``password``; returns Synapse's answer (user_id, access_token, ...).

    Raises ``FnError("matrix_user_exists")`` when the user is taken.
    """
    url = homeserver_url.rstrip("/") + "/_synapse/admin/v1/register"
    nonce = str(_request(url)["nonce"])
    body = {
        "nonce": nonce,
        "username": localpart,
        "password": password,
        "admin": admin,
        "mac": registration_mac(shared_secret, nonce, localpart, password, admin),
    }
    return _request(url, body)


def lock_out(homeserver_url: str, user_id: str, password: str, new_password: str, *,
             timeout: float = 10.0) -> None:
    """End every session of ``user_id`` and change its password to ``new_password``.

    For a revoked device, whose password the hub made: its running agent's access token
    dies at once (its next sync gets M_UNKNOWN_TOKEN), and the password the device holds no
    longer logs in, so a stolen or restarted agent cannot come back as a new session. One
    ``/account/password`` call does both (``logout_devices``), authenticated in the same
    request (user-interactive auth with the old password).
    """
    base = homeserver_url.rstrip("/") + "/_matrix/client/v3"
    ident = {"type": "m.id.user", "user": user_id}
    login = {"type": "m.login.password", "identifier": ident, "password": password,
             "initial_device_display_name": "hub: revocation"}  # fmt: skip
    token = str(_request(base + "/login", login, timeout)["access_token"])
    auth = {"type": "m.login.password", "identifier": ident, "password": password}
    _request(base + "/account/password", {"new_password": new_password, "logout_devices": True,
                                           "auth": auth}, timeout, token=token)  # fmt: skip
    # the login above made a session of its own; logout_devices keeps the caller's
    _request(base + "/logout", {}, timeout, token=token)
