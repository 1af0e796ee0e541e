"""envelope_sign: sign a request envelope for a device with the controller key."""

from __future__ import annotations

from typing import Any

from meshagents.runtime.catalog import function
from meshagents.trust import envelope
from meshagents.trust.keystore import CONTROLLER_KEY, load_signing_key


@function(id="envelope_sign", group="envelope", requires=["keystore"])
def envelope_sign(
    device_id: str,
    capability: str,
    args: dict[str, Any],
    ttl_s: int = 300,
    approval: str | None = None,
    request_id: str | None = None,
) -> dict[str, Any]:
    """Sign a request envelope (capability + JSON args) with the controller key.

    Args:
        device_id: the target device's id, as in its manifest's device_id (1-128 of A-Z a-z 0-9 _ . : -).
        capability: the capability to invoke, as named in the device's manifest (lowercase, e.g.
            shell.exec.ls).
        args: the capability's arguments as a JSON object, e.g. '{"path": "/var/log"}'.
        ttl_s: seconds the envelope stays valid after signing (the device refuses lifetimes over 3600).
        approval: Matrix event id of the operator's approval ($...), for a capability that requires one;
            default: none.
        request_id: request id to use (1-128 of A-Z a-z 0-9 _ . : -); default: 16 random hex digits.
    """
    env = envelope.sign(
        load_signing_key(CONTROLLER_KEY),
        device_id=device_id,
        capability=capability,
        args=args,
        ttl_s=ttl_s,
        approval=approval,
        request_id=request_id,
    )
    return env.model_dump(mode="json")
