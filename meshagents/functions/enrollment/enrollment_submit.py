"""enrollment_submit: the device side of enrollment — send public keys, verify the manifest, keep it.

Nothing is installed here: this function only talks to the hub and writes files in
its own directory (default ``<state>/enrollment``). The WireGuard client is
installed by the next step (``wg_client_install``) only after this one returned, so a
manifest that does not verify leaves the device with no mesh interface at all.

Checks, in order: the token is well formed and signed by the operator key it names
(and, if this device already pinned an operator key, it is that one); the hub's
answer carries a manifest signed by the token's operator key (``manifest_invalid_signature``
otherwise — reported to the hub at ``/enroll/refused`` so it removes the peer it
prepared), naming this device's own keys and the address the hub gave; and within what
the token pinned (``check_against_token``): the hub's ``profile`` must hash to the token's
``profile_sha256`` and hold every capability the manifest grants, and the manifest's
controllers must be among the token's (``profile_mismatch`` / ``manifest_beyond_token``).
The answer's secrets (Matrix password, WireGuard preshared key) arrive sealed to this
device's key and are opened here (``enroll_sealed_invalid`` when they do not open).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from meshagents.errors import FnError
from meshagents.fsutil import write_atomic
from meshagents.runtime.catalog import function


def _wg_private_key(path: Path) -> str:
    """The device's WireGuard private key file; made here (wg_keygen) the first time."""
    from meshagents.runtime.api import call
    from meshagents.wg.hub import public_of
    from meshagents.wg.keys import check_key

    if not path.exists():
        keys = call("wg_keygen", caller="enrollment_submit")
        write_atomic(path, keys["private_key"] + "\n")
    try:
        private = check_key(path.read_text(encoding="utf-8"), "WireGuard private key")
    except OSError as exc:
        raise FnError("key_file_unreadable", f"cannot read {path}: {exc.strerror}") from exc
    return public_of(private)


def _post(url: str, body: dict[str, Any], timeout_s: float) -> tuple[int, Any]:
    """POST JSON; (status, parsed body or None). urllib: no TLS context built for plain http."""
    import urllib.error
    import urllib.request

    req = urllib.request.Request(  # noqa: S310 - http(s) only, checked by the caller
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as resp:  # noqa: S310
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    except (urllib.error.URLError, OSError) as exc:
        raise FnError("hub_unreachable", f"POST {url}: {exc}") from exc
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, None


def _check_reachable(base: str, timeout_s: float) -> None:
    """GET the hub's public /healthz before the one-use token is spent: an unreachable hub
    (wrong URL, no route, firewall) fails here, with the token still good for another try."""
    import urllib.error
    import urllib.request

    url = f"{base}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=min(timeout_s, 5.0)) as resp:  # noqa: S310 - http(s) checked
            ok = resp.status == 200
    except urllib.error.HTTPError as exc:
        ok = exc.code == 200
    except (urllib.error.URLError, OSError) as exc:
        raise FnError(
            "hub_unreachable", f"GET {url}: {exc}; the token was not used (check the URL and the route)"
        ) from exc
    if not ok:
        raise FnError("hub_unreachable", f"GET {url} did not answer 200; the token was not used")


def _wait_for_signature(base: str, token: str, timeout_s: float, wait_s: float) -> Any:
    """Two-step signing: poll the hub until the operator has signed this device's manifest."""
    import sys
    import time

    print("enrollment_submit: waiting for the operator to sign the manifest", file=sys.stderr, flush=True)
    deadline = time.monotonic() + wait_s
    while True:
        status, data = _post(f"{base}/enroll/manifest", {"token": token}, timeout_s)
        if status == 200 and isinstance(data, dict):
            return data.get("manifest")
        if status != 202:
            code = data.get("error") if isinstance(data, dict) else None
            raise FnError(
                str(code or "enroll_failed"), f"hub answered {status} for the manifest", status=status
            )
        if time.monotonic() > deadline:
            raise FnError(
                "manifest_not_signed", f"the operator did not sign within {wait_s} s (run again later)"
            )
        time.sleep(1.0)


def _agent_config(
    state: Path, folder: Path, signed: Any, matrix: dict[str, Any], healthz: str, operator_key: str
) -> Path:
    """``<state>/device_agent/config.json`` for the device agent (0600: it holds the Matrix password)."""
    agent_dir = state / "device_agent"
    agent_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    config = {
        "device_id": signed.device_id,
        "device_name": signed.device_name,
        "manifest_path": str(folder / "manifest.json"),
        "operator_key": operator_key,
        "homeserver": matrix.get("homeserver_url"),
        "matrix_user": matrix.get("user_id") or signed.matrix_user,
        "matrix_password": matrix["password"],
        "device_room": matrix.get("room_alias") or matrix.get("room_id"),
        "approvals_room": matrix.get("approvals_room"),
        "bot_users": list(matrix.get("bot_users") or []),
        "hub_url": healthz.removesuffix("/healthz"),
    }
    path = agent_dir / "config.json"
    write_atomic(path, json.dumps(config, indent=2, sort_keys=True) + "\n")
    return path


@function(id="enrollment_submit", group="enrollment", requires=["network", "keystore"])
def enrollment_submit(
    token: str,
    hub_url: str | None = None,
    wg_private_key_file: Path | None = None,
    out_dir: Path | None = None,
    timeout_s: float = 60.0,
    wait_s: float = 600.0,
) -> dict[str, Any]:
    """Enroll this device with TOKEN at the hub; verify the manifest against the token's operator key.

    Args:
        token: the enrollment token text from enrollment_token_create (mat1.<payload>.<signature>); used up at
            the hub.
        hub_url: base URL of the hub's public enrollment server, with scheme, e.g.
            https://hub.example.org:8443; default: the hub_endpoint named in the token.
        wg_private_key_file: this device's WireGuard private key file (base64); made with wg_keygen (0600) if
            missing. Default: <out_dir>/wg.key.
        out_dir: directory for manifest.json, client.conf, enrollment.json and matrix.json (made 0700);
            default: <state>/enrollment. The device agent's config (when the hub provisions Matrix) goes to
            <state>/device_agent/config.json regardless.
        timeout_s: seconds to wait for each HTTP answer from the hub (at most 5 for the /healthz check made
            before the token is spent). The /enroll answer is real work on the hub (the peer, a Matrix
            account and room): a slow hub (the Debian test VM under emulation) took over 15 s.
        wait_s: with offline manifest signing: seconds to wait (polling every second) for the operator's
            signature; after that, run again with the same token to keep waiting.
    """
    from meshagents.state import state_dir
    from meshagents.trust import manifest as manifest_mod
    from meshagents.trust import tokens
    from meshagents.trust.keystore import DEVICE_KEY, load_signing_key
    from meshagents.trust.paths import serial_store_path
    from meshagents.trust.review import check_against_token
    from meshagents.trust.rotation import current_operator_key, pin_operator_key, pinned_path
    from meshagents.trust.sealing import unseal_answer
    from meshagents.trust.signing import TYPE_TOKEN, public_b64, verify_payload
    from meshagents.wg.client import render_client

    tok = tokens.decode(token)
    if not verify_payload(tok.model_dump(mode="json"), tok.signature or "", tok.operator_key, TYPE_TOKEN):
        raise FnError("token_invalid", "the token is not signed by the operator key it names")
    if pinned_path().exists() and current_operator_key() != tok.operator_key:
        raise FnError("operator_key_mismatch", "this device trusts another operator key than the token's")
    base = (hub_url or tok.hub_endpoint).rstrip("/")
    if not base.startswith(("http://", "https://")):
        raise FnError("bad_usage", "no hub URL: pass --hub-url (the token names none)")
    folder = out_dir or state_dir() / "enrollment"
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    key_file = wg_private_key_file or folder / "wg.key"
    wg_pub = _wg_private_key(key_file)
    device_key = public_b64(load_signing_key(DEVICE_KEY))

    # two-step signing: an earlier run with this token may be waiting for the operator already
    pending_file = folder / "pending.json"
    saved = json.loads(pending_file.read_text(encoding="utf-8")) if pending_file.exists() else {}
    if saved.get("token_id") == tok.token_id and isinstance(saved.get("answer"), dict):
        status, answer = 200, saved["answer"]
    else:
        _check_reachable(base, timeout_s)
        status, answer = _post(
            f"{base}/enroll", {"token": token, "wg_public_key": wg_pub, "device_key": device_key}, timeout_s
        )
        if status == 200 and isinstance(answer, dict):
            # the token is spent now: keep the hub's answer (its secrets still sealed to our key) so
            # that a failure from here on resumes with it (meshagents enroll --resume)
            write_atomic(pending_file, json.dumps({"token_id": tok.token_id, "answer": answer}) + "\n")
    if status != 200 or not isinstance(answer, dict):
        code = answer.get("error") if isinstance(answer, dict) else None
        message = answer.get("message") if isinstance(answer, dict) else None
        raise FnError(
            str(code or "enroll_failed"), f"hub answered {status}: {message or answer}", status=status
        )

    def refuse(code: str, message: str) -> FnError:
        # tell the hub, so it removes the peer it prepared; then fail with nothing installed
        try:
            r_status, _ = _post(f"{base}/enroll/refused", {"token": token, "reason": code}, timeout_s)
            reported = r_status == 200
        except FnError:
            reported = False
        return FnError(code, message, reported_to_hub=reported)

    # The hub seals the Matrix password and the preshared key to our device key
    # (meshagents.trust.sealing): the pending file keeps them sealed, only we open them.
    sealed_answer = answer
    try:
        answer, _ = unseal_answer(answer, load_signing_key(DEVICE_KEY))
    except FnError as exc:
        raise refuse(exc.code, exc.message) from exc
    manifest = answer.get("manifest")
    if manifest is None and answer.get("manifest_pending"):
        write_atomic(pending_file, json.dumps({"token_id": tok.token_id, "answer": sealed_answer}) + "\n")
        manifest = _wait_for_signature(base, token, timeout_s, wait_s)
    if not isinstance(manifest, dict):
        raise refuse("manifest_invalid", "the hub's answer has no manifest")
    try:
        signed = manifest_mod.verify(manifest, tok.operator_key)
    except FnError as exc:
        raise refuse(exc.code, f"manifest refused: {exc.message}") from exc
    address = answer.get("address")
    problems = [
        what
        for what, ok in (
            ("device_key", signed.device_key == device_key),
            ("wg_public_key", signed.wg_public_key == wg_pub),
            ("mesh_address", signed.mesh_address == address),
            ("device_name", signed.device_name == tok.device_name),
            ("hub_public_key", not tok.hub_public_key or answer.get("hub_public_key") == tok.hub_public_key),
        )
        if not ok
    ]
    if problems:
        raise refuse("manifest_mismatch", f"the manifest or answer does not match this device: {problems}")
    try:  # within what the token promised: its pinned profile (by hash) and controllers
        check_against_token(
            manifest, profile_sha256_pin=tok.profile_sha256, controllers_pin=tok.controllers,
            profile=answer.get("profile"),
        )  # fmt: skip
    except FnError as exc:
        raise refuse(exc.code, f"manifest refused: {exc.message}") from exc
    # only now is the manifest ours: remember its serial and pin the operator key
    manifest_mod.SerialStore(serial_store_path()).check_and_record(signed.device_id, signed.serial)
    pin_operator_key(tok.operator_key)

    endpoint = answer.get("endpoint") or f"{urlparse(base).hostname}:51820"
    cidr = str(answer.get("address_cidr") or f"{address}/24")
    client = render_client(
        private_key=None,  # the placeholder: wg_client_install fills it from the key file, here
        address=str(address),
        prefixlen=int(cidr.split("/")[1]),
        hub_public_key=str(answer["hub_public_key"]),
        endpoint=str(endpoint),
        mesh_subnet=str((answer.get("allowed_ips") or ["10.42.0.0/24"])[0]),
        preshared_key=answer.get("preshared_key"),
    )
    write_atomic(folder / "manifest.json", json.dumps(manifest, indent=2, sort_keys=True) + "\n", mode=0o644)
    write_atomic(folder / "client.conf", client)
    healthz = (
        f"http://{answer.get('hub_mesh_address', '10.42.0.1')}:{answer.get('operator_port', 8000)}/healthz"
    )
    info = {k: v for k, v in answer.items() if k not in ("manifest", "preshared_key", "matrix")}
    info["healthz_url"] = healthz
    matrix = answer.get("matrix")
    out: dict[str, Any] = {
        "device_id": signed.device_id,
        "address": address,
        "endpoint": endpoint,
        "hub_public_key": answer["hub_public_key"],
        "serial": signed.serial,
        "capabilities": [c.name for c in signed.capabilities],
        "manifest_file": str(folder / "manifest.json"),
        "client_config": str(folder / "client.conf"),
        "wg_private_key_file": str(key_file),
        "healthz_url": healthz,
        "matrix_credentials": None,
        "agent_config": None,
    }
    if isinstance(matrix, dict) and matrix.get("password"):
        write_atomic(folder / "matrix.json", json.dumps(matrix, indent=2, sort_keys=True) + "\n")
        out["matrix_credentials"] = str(folder / "matrix.json")
        info["matrix"] = {k: v for k, v in matrix.items() if k != "password"}
        out["agent_config"] = str(
            _agent_config(state_dir(), folder, signed, matrix, healthz, tok.operator_key)
        )
    write_atomic(folder / "enrollment.json", json.dumps(info, indent=2, sort_keys=True) + "\n")
    pending_file.unlink(missing_ok=True)
    return out
