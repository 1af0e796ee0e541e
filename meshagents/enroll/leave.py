"""``meshagents leave``: the hub told (a device-signed request, the peer revoked), then the agent's
service, its config and the mesh interface removed.

The hub comes first, at its public enroll listener (``POST /enroll/leave``: the revoke
takes the mesh path away before an answer could come back over it). When the hub cannot
be reached, nothing local is touched unless ``--local`` says so (then the operator must
revoke the device with ``/api/peers/<id>/revoke``). Kept: the
device key, the audit chain and its checkpoints (the device's record of what it ran),
so the chain can still be verified after leaving.
"""

from __future__ import annotations

import json
import shutil
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from meshagents.enroll import journal as journal_mod
from meshagents.enroll import service
from meshagents.enroll.flow import CALLER, Options, Progress, _state
from meshagents.enroll.precheck import ServiceKind
from meshagents.errors import FnError


def tell_hub(hub_url: str, device_id: str, timeout_s: float = 10.0) -> dict[str, Any]:
    from meshagents.trust import leave as leave_mod
    from meshagents.trust.keystore import DEVICE_KEY, load_signing_key

    body = leave_mod.request(device_id, load_signing_key(DEVICE_KEY))
    url = f"{hub_url.rstrip('/')}/enroll/leave"
    req = urllib.request.Request(  # noqa: S310 - the hub's http(s) URL from enrollment
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as resp:  # noqa: S310
            answer: dict[str, Any] = json.loads(resp.read())
            return answer
    except urllib.error.HTTPError as exc:
        try:
            err = json.loads(exc.read())
        except ValueError:
            err = {}
        hub_code = err.get("error")  # the hub's own code, passed through
        message = f"the hub answered {exc.code}: {err.get('message')}"
        raise FnError(str(hub_code) if hub_code else "leave_refused", message) from exc
    except (urllib.error.URLError, OSError) as exc:
        raise FnError(
            "hub_unreachable", f"POST {url}: {exc}; nothing was removed (--local removes it here anyway)"
        ) from exc


def leave(*, local: bool = False, progress: Progress | None = None) -> dict[str, Any]:
    from meshagents.runtime.api import call

    progress = progress or Progress()
    state = _state()
    jr = journal_mod.load(state)
    if jr is None:
        raise FnError("not_enrolled", f"no enrollment journal in {journal_mod.path(state)}: nothing to leave")
    opts = Options.from_json(jr.token, jr.options)
    r = jr.result
    out: dict[str, Any] = {"device_id": r.get("device_id")}
    hub_url = _hub_url(opts)
    if r.get("device_id") and hub_url and "submit" in jr.done:
        try:
            out["hub"] = tell_hub(hub_url, str(r["device_id"]))
            progress.say(f"leave: the hub revoked {r['device_id']}")
        except FnError as exc:
            if not local:
                raise
            out["hub"] = {"error": exc.code, "message": exc.message}
            progress.say(f"leave: the hub was not told ({exc.code}); revoke {r['device_id']} there")
    kind: ServiceKind = (r.get("service") or {}).get("kind") or "none"
    out["service_removed"] = service.remove(kind, service.ServiceSpec("", Path(), state, None).home)
    if "wireguard" in jr.done and r.get("wg_method") != "app":
        try:
            call("wg_interface_down", caller=CALLER, interface=opts.interface, config_dir=opts.config_dir)
        except FnError as exc:
            out["interface_down"] = {"error": exc.code, "message": exc.message}
        wg_unit = r.get("wg_unit")
        if wg_unit and shutil.which("systemctl"):
            import subprocess

            subprocess.run(["systemctl", "disable", wg_unit], capture_output=True, check=False)
            if wg_unit.startswith("meshagents-wg-"):
                Path("/etc/systemd/system", wg_unit).unlink(missing_ok=True)
        conf = opts.config_dir / f"{opts.interface}.conf"
        conf.unlink(missing_ok=True)
        out["wg_config_removed"] = str(conf)
    for key in ("agent_config", "matrix_credentials", "client_config", "wg_private_key_file"):
        if r.get(key):
            Path(r[key]).unlink(missing_ok=True)
    wg_app = Path(r["client_config"]).with_name("wg-app.conf") if r.get("client_config") else None
    if wg_app is not None:
        wg_app.unlink(missing_ok=True)
    journal_mod.remove(state)
    progress.say(f"leave: {r.get('device_id')} removed from this device (device key and audit chain kept)")
    return out


def _hub_url(opts: Options) -> str:
    """The hub's public enroll listener (the one enrollment used): not over the mesh, which the
    revoke takes away before the answer could come back."""
    from meshagents.trust import tokens

    return (opts.hub_url or tokens.decode(opts.token).hub_endpoint).rstrip("/")
