"""Self cross-signing at start: the account's seeds, uploaded once, our device signed.

The master / self-signing / user-signing seeds are created once, kept 0600 in
``ClientConfig.seeds_path`` (shared by all devices of one account) and never
regenerated. When the server already holds another master key, ``adopt_identity``
(if configured) supplies the account's current seeds; otherwise ours replace it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from meshagents.errors import FnError
from meshagents.fsutil import read_json, write_private
from meshagents.matrix import crosssign
from meshagents.matrix.client.session import Session

log = logging.getLogger("meshagents.matrix")

KeysQuery = Callable[[list[str]], Awaitable[dict[str, Any]]]


def load_seeds(session: Session) -> crosssign.CrossSigningSeeds:
    """The account's seeds, generated and saved on first use."""
    path = session.config.seeds_path
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    data = read_json(path)
    if data is not None:
        return crosssign.CrossSigningSeeds.from_json(data)
    seeds = crosssign.CrossSigningSeeds.generate()
    write_private(path, seeds.to_json())
    return seeds


async def bootstrap_cross_signing(session: Session, keys_query: KeysQuery) -> bool:
    """Upload our cross-signing keys (once) and sign our own device with them.

    ``keys_query`` fetches (and records for the policy) the keys of some users. True
    when our device was signed just now (our own keys are stale for the policy)."""
    client, cfg = session.client, session.config
    seeds = load_seeds(session)
    query = await keys_query([cfg.user_id])
    master_obj = query.get("master_keys", {}).get(cfg.user_id) or {}
    if master_obj and cfg.adopt_identity is not None and (
        f"ed25519:{seeds.master_public}" not in master_obj.get("keys", {})
    ):
        # never reset someone else's reset back in silence: take the current identity
        seeds = await asyncio.to_thread(cfg.adopt_identity)
        if f"ed25519:{seeds.master_public}" not in master_obj.get("keys", {}):
            raise FnError("identity_changed", f"the server's master key of {cfg.user_id} is not ours")
        write_private(cfg.seeds_path, seeds.to_json())
        log.warning("%s: adopted the account's new cross-signing identity", cfg.user_id)
    if f"ed25519:{seeds.master_public}" not in master_obj.get("keys", {}):
        if master_obj:
            log.warning("replacing the cross-signing identity of %s on the server", cfg.user_id)
        body = crosssign.device_signing_upload(cfg.user_id, seeds)
        status, answer = await session.api("POST", "/_matrix/client/v3/keys/device_signing/upload", body)
        if status == 401 and "session" in answer:
            body["auth"] = {
                "type": "m.login.password",
                "identifier": {"type": "m.id.user", "user": cfg.user_id},
                "password": cfg.password,
                "session": answer["session"],
            }
            status, answer = await session.api(
                "POST", "/_matrix/client/v3/keys/device_signing/upload", body
            )
        if status != 200:
            raise FnError(
                "cross_signing_failed",
                f"device_signing/upload answered {status}: {answer.get('errcode')}",
            )
        query = await keys_query([cfg.user_id])
    device = query.get("device_keys", {}).get(cfg.user_id, {}).get(client.device_id)
    own = client.olm.account.identity_keys if client.olm else {}
    if (
        not device
        or device.get("keys", {}).get(f"ed25519:{client.device_id}") != own.get("ed25519")
        or device.get("keys", {}).get(f"curve25519:{client.device_id}") != own.get("curve25519")
    ):
        raise FnError(
            "cross_signing_failed", "the server's copy of our device keys differs from our account"
        )
    if crosssign.check_device_chain(query, cfg.user_id, client.device_id, seeds.master_public).ok:
        return False
    signed = crosssign.sign_device(device, cfg.user_id, seeds)
    status, answer = await session.api(
        "POST", "/_matrix/client/v3/keys/signatures/upload", {cfg.user_id: {client.device_id: signed}}
    )
    if status != 200 or answer.get("failures"):
        raise FnError(
            "cross_signing_failed", f"signatures/upload answered {status}: {answer.get('failures')}"
        )
    return True
