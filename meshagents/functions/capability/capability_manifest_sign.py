"""capability_manifest_sign: sign a device's capability manifest with the operator key.

With ``--profile P`` the manifest is first compared (``meshagents.trust.review``) with
the operator's own copy of profile P, with the previous manifest (``--previous FILE``,
else the last one this machine signed for that device) and with the operator's own
configuration (``meshagents.opconfig``: controllers, approvers, operator key). Anything
beyond the profile is refused (``manifest_beyond_profile``) unless named with
``--allow NAME``; a controller, approver or operator key that is not the operator's is
always refused (``manifest_config_mismatch``). ``--show`` prints the comparison table
(stderr) and the review (stdout) and signs nothing. Without ``--profile``, the profile is
the one this machine's last token for the device named (``enrollment_token_create``
records it), else ``--hub-profile`` (what the hub says; the device still checks the hash
its token pinned).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from meshagents import opconfig
from meshagents.errors import FnError
from meshagents.runtime.catalog import function
from meshagents.trust import manifest as manifest_mod
from meshagents.trust import review as review_mod
from meshagents.trust.canonical import loads_strict
from meshagents.trust.keystore import OPERATOR_KEY, load_signing_key
from meshagents.trust.signing import public_b64


def _read(path: Path, code: str = "manifest_invalid") -> dict[str, Any]:
    try:
        data = loads_strict(path.read_bytes())
    except OSError as exc:
        raise FnError("manifest_unreadable", f"cannot read {path}: {exc.strerror}") from exc
    except FnError as exc:
        raise FnError(code, f"{path}: {exc.message}") from exc
    if not isinstance(data, dict):
        raise FnError(code, f"{path}: not a JSON object")
    return data


@function(id="capability_manifest_sign", group="capability", requires=["keystore"])
def capability_manifest_sign(
    manifest: Path,
    serial: int | None = None,
    ttl_s: int | None = None,
    profile: str | None = None,
    previous: Path | None = None,
    allow: list[str] | None = None,
    show: bool = False,
    operator_config: Path | None = None,
    hub_profile: str | None = None,
) -> dict[str, Any]:
    """Sign a manifest file with the operator key (checked against --profile first); --show only compares.

    Args:
        manifest: JSON file of the manifest to sign (an unsigned one, or a signed one: its signature is
            replaced and operator_key set to the signing key).
        serial: set the manifest's serial (an integer >= 1 that only grows: a verifier that saw a higher one
            refuses it); default: keep the file's.
        ttl_s: validity in seconds from now (sets issued_at = now, expires_at = now + ttl_s); default: keep
            the file's issued_at and expires_at.
        profile: the profile the device's token named (a name in the operator's profiles directory): the
            manifest is compared with it and anything beyond it refused (manifest_beyond_profile).
        previous: the device's previous signed manifest, for the differences of a re-issue; default: the
            last one this machine signed for that device.
        allow: a capability beyond the profile that you mean to grant (repeat the option).
        show: print the comparison table and the review, sign nothing.
        operator_config: the operator's own configuration (controllers, approvers, operator key);
            default: $FN_OPERATOR_CONFIG, else <state>/operator/operator.toml.
        hub_profile: the profile name the hub reports, used only when this machine has no token record
            for the device (the device still checks the hash its token pinned).
    """
    data = _read(manifest)
    if serial is not None:
        data["serial"] = serial
    if ttl_s is not None:
        now = int(time.time())
        data["issued_at"], data["expires_at"] = now, now + ttl_s
    key = load_signing_key(OPERATOR_KEY)
    source = "given"
    if profile is None and (show or hub_profile is not None):
        # the profile this machine's token named for the device; the hub's name only as a last resort
        record = opconfig.token_profile(str(data.get("device_id")))
        profile, source = (record["profile"], "your token") if record else (hub_profile, "the hub's word")
    if show or profile is not None:
        if profile is None:
            raise FnError("bad_usage", "--show needs --profile NAME (the profile the device's token named)")
        cfg = opconfig.load(operator_config)
        if previous is not None:
            # a "previous" this key did not sign is no reference
            prev: dict[str, Any] | None = manifest_mod.verify(_read(previous), public_b64(key)).model_dump(
                mode="json"
            )
        else:
            prev = opconfig.last_signed(str(data.get("device_id")))
            try:
                if prev is not None:
                    manifest_mod.verify(prev, public_b64(key))
            except FnError:  # signed under a rotated-away key, or edited: not a reference
                prev = None
        rv = review_mod.review(
            data,
            opconfig.load_profile(cfg, profile),
            prev,
            cfg.expected(public_b64(key)) if cfg.exists else None,
            allow or [],
        )
        if show:
            print(review_mod.render(rv), file=sys.stderr, end="")
            out = rv.to_json()
            out["operator_config"] = str(cfg.path) if cfg.exists else None
            out["profile_source"] = source
            return out
        if not cfg.exists:
            raise FnError(
                "operator_config_missing",
                f"no operator configuration at {cfg.path}: controllers and approvers to check against",
            )
        review_mod.check(rv)
    signed = manifest_mod.sign(data, key).model_dump(mode="json")
    if profile is not None:
        opconfig.remember_signed(signed)
    return signed
