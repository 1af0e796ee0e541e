"""capability_manifest_reissue: a device's next manifest, shown, signed here, handed to the hub.

Built on the operator's machine from what the operator holds, never from the hub's
word: the device's identity (keys, address, Matrix user) from its current manifest,
which must verify under the operator key; capabilities from the operator's copy of
``--profile`` (plus, with ``--allow NAME``, capability NAME carried over from the
current manifest although the profile lacks it); controllers and approvers from the
operator configuration (``meshagents.opconfig``); ``serial`` one above the current.
The comparison table (profile, previous manifest, every difference marked) goes to
stderr; then a confirmation on the terminal (or ``--yes``), the signature, and
``POST /api/manifests/{id}`` on the hub (through its loopback API, ``--config``). The
device agent polls ``GET /api/manifest/{id}``, verifies, and says so in its room and
audit chain. ``--show`` stops after the table. With the hub elsewhere,
``pipelines/reissue_manifest --host HOST`` fetches the current manifest there
(``hub_manifest_current``), runs this with ``--current FILE --no-submit`` here, and hands the
signed manifest over with ``hub_manifest_submit``.
"""

from __future__ import annotations

import contextlib
import sys
import time
from pathlib import Path
from typing import Any

from meshagents import hubctl, opconfig
from meshagents.errors import FnError
from meshagents.runtime.catalog import function
from meshagents.trust import manifest as manifest_mod
from meshagents.trust import review as review_mod
from meshagents.trust.keystore import OPERATOR_KEY, load_signing_key
from meshagents.trust.signing import public_b64

_IDENTITY = ("type", "device_id", "device_name", "device_key", "wg_public_key", "mesh_address", "matrix_user")


def next_manifest(
    current: dict[str, Any],
    profile: dict[str, Any],
    cfg: opconfig.OperatorConfig,
    operator_key: str,
    *,
    allow: list[str],
    ttl_s: int | None,
    now: int,
) -> dict[str, Any]:
    """The unsigned next manifest (pure but for ``cfg``)."""
    if cfg.controllers is None or cfg.approvers is None:
        raise FnError(
            "operator_config_missing", f"{cfg.path} must name controllers and approvers for a re-issue"
        )
    caps = list(profile["capabilities"])
    names = {c["name"] for c in caps}
    for name in allow:
        carried = [c for c in current.get("capabilities", []) if c.get("name") == name]
        if not carried and name not in names:
            raise FnError("bad_usage", f"--allow {name}: neither in the profile nor in the current manifest")
        caps += [c for c in carried if name not in names]
    lifetime = ttl_s or max(int(current["expires_at"]) - int(current["issued_at"]), 1)
    return {
        **{k: current[k] for k in _IDENTITY},
        "approvers": list(cfg.approvers),
        "controllers": list(cfg.controllers),
        "capabilities": caps,
        "serial": int(current["serial"]) + 1,
        "issued_at": now,
        "expires_at": now + lifetime,
        "operator_key": operator_key,
    }


def _confirm(device: str) -> None:
    if not sys.stdin.isatty():
        raise FnError("confirmation_required", f"no terminal to confirm {device}'s manifest on: pass --yes")
    print(f"sign the manifest of {device} as shown? [y/N] ", end="", file=sys.stderr, flush=True)
    if sys.stdin.readline().strip().lower() not in ("y", "yes"):
        raise FnError("declined", f"{device}'s manifest not signed (declined)")


@function(id="capability_manifest_reissue", group="capability", requires=["keystore"])
def capability_manifest_reissue(
    device_name: str,
    profile: str,
    allow: list[str] | None = None,
    yes: bool = False,
    show: bool = False,
    ttl_s: int | None = None,
    config: Path = Path("/etc/meshagents/wg_hub.toml"),
    operator_config: Path | None = None,
    current: Path | None = None,
    submit: bool = True,
) -> dict[str, Any]:
    """Re-issue DEVICE_NAME's manifest from PROFILE (serial + 1): show the difference, sign, give the hub.

    Args:
        device_name: the enrolled device whose manifest to re-issue (its device id).
        profile: the profile the new manifest is built from: a name in the operator's profiles directory.
        allow: a capability of the current manifest to carry over although the profile lacks it (repeat).
        yes: sign without asking on the terminal (scripts); what the review refuses stays refused.
        show: print the comparison table and the review only; sign and send nothing.
        ttl_s: validity of the new manifest in seconds from now; default: the current manifest's lifetime.
        config: the hub's config file (its loopback operator API and token) on this machine.
        operator_config: the operator's own configuration (controllers, approvers, operator key);
            default: $FN_OPERATOR_CONFIG, else <state>/operator/operator.toml.
        current: the device's current signed manifest as a file (fetched from a remote hub with
            hub_manifest_current); default: read from the hub named by config.
        submit: hand the signed manifest to the hub (--no-submit: print it, for hub_manifest_submit).
    """
    now_doc: Any
    if current is not None:  # fetched elsewhere (pipelines/reissue_manifest --host: hub_manifest_current)
        now_doc = manifest_mod.load_file(current)
    else:
        answer = hubctl.request(hubctl.read_config(config), "GET", f"/api/manifest/{device_name}")
        now_doc = answer.get("manifest") if isinstance(answer, dict) else None
    if not isinstance(now_doc, dict) or now_doc.get("device_id") != device_name:
        raise FnError("device_unknown", f"no current manifest of {device_name!r}")
    key = load_signing_key(OPERATOR_KEY)
    # the previous manifest counts only if this operator key signed it (the hub could lie)
    manifest_mod.verify(now_doc, public_b64(key))
    cfg = opconfig.load(operator_config)
    prof = opconfig.load_profile(cfg, profile)
    body = next_manifest(
        now_doc, prof, cfg, public_b64(key), allow=allow or [], ttl_s=ttl_s, now=int(time.time())
    )
    rv = review_mod.review(body, prof, now_doc, cfg.expected(public_b64(key)), allow or [])
    record = opconfig.token_profile(device_name)  # the profile this machine's token named
    if record is not None and record.get("profile") != profile:
        # the token's profile gone from this machine: nothing to compare with
        with contextlib.suppress(FnError):
            rv = review_mod.note_beyond_token(rv, opconfig.load_profile(cfg, str(record["profile"])))
    print(review_mod.render(rv), file=sys.stderr, end="")
    if show:
        return rv.to_json()
    review_mod.check(rv)
    if not yes:
        _confirm(device_name)
    signed = manifest_mod.sign(body, key).model_dump(mode="json")
    opconfig.remember_signed(signed)
    out: dict[str, Any] = {
        "device_id": signed["device_id"],
        "serial": signed["serial"],
        "previous_serial": now_doc["serial"],
        "differences": [d.to_json() for d in rv.differences],
    }
    if submit:
        out["hub"] = hubctl.request(
            hubctl.read_config(config), "POST", f"/api/manifests/{device_name}", signed
        )
    else:
        out["manifest"] = signed  # for hub_manifest_submit on the hub (pipelines/reissue_manifest)
    return out
