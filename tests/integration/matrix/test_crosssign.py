"""After bootstrap, /keys/query shows our device signed by the self-signing key, which is
signed by the master key. The signatures are checked here with PyNaCl directly."""

from __future__ import annotations

import base64
import json
import urllib.request
from typing import Any

import nacl.signing
import pytest
from canonicaljson import encode_canonical_json

from meshagents.matrix.client import MatrixClient
from tests.testbed.matrix_clients import MakeClient
from tests.testbed.synapse import SynapseServer

pytestmark = pytest.mark.integration


def _b64(s: str) -> bytes:
    return base64.b64decode(s + "=" * (-len(s) % 4))


def _verify(obj: dict[str, Any], user: str, key_id: str, public: str) -> None:
    """Raises nacl.exceptions.BadSignatureError when the signature is wrong."""
    body = {k: v for k, v in obj.items() if k not in ("signatures", "unsigned")}
    sig = _b64(obj["signatures"][user][f"ed25519:{key_id}"])
    nacl.signing.VerifyKey(_b64(public)).verify(encode_canonical_json(body), sig)


def keys_query(synapse: SynapseServer, client: MatrixClient, user: str) -> dict[str, Any]:
    req = urllib.request.Request(
        synapse.url + "/_matrix/client/v3/keys/query",
        data=json.dumps({"device_keys": {user: []}}).encode(),
        headers={
            "Authorization": f"Bearer {client.nio_client.access_token}",
            "Content-Type": "application/json",
        },
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        out: dict[str, Any] = json.loads(r.read())
        return out


def _only_key(obj: dict[str, Any]) -> str:
    ((kid, pub),) = obj["keys"].items()
    assert kid == f"ed25519:{pub}"
    return str(pub)


def check_chain(q: dict[str, Any], user: str, device_id: str) -> str:
    master = _only_key(q["master_keys"][user])
    assert q["master_keys"][user]["usage"] == ["master"]
    ssk_obj = q["self_signing_keys"][user]
    assert ssk_obj["usage"] == ["self_signing"]
    ssk = _only_key(ssk_obj)
    _verify(ssk_obj, user, master, master)
    device = q["device_keys"][user][device_id]
    _verify(device, user, ssk, ssk)
    _verify(device, user, device_id, device["keys"][f"ed25519:{device_id}"])
    return master


async def test_device_cross_signed_after_bootstrap(
    synapse: SynapseServer, make_client: MakeClient, tmp_path: Any
) -> None:
    bot = await make_client("xs")
    observer = await make_client("obs")
    # Seen by ourselves and by another user.
    master = check_chain(keys_query(synapse, bot, bot.user_id), bot.user_id, bot.device_id)
    assert check_chain(keys_query(synapse, observer, bot.user_id), bot.user_id, bot.device_id) == master
    seeds = json.loads((bot.config.store_dir / "cross_signing.json").read_text())
    assert (bot.config.store_dir / "cross_signing.json").stat().st_mode & 0o777 == 0o600
    assert set(seeds) == {"master", "self_signing", "user_signing"}

    # A restart keeps the identity: same master key, no new upload, device still signed.
    await bot.stop()
    again = await make_client(user=(bot.user_id, bot.config.password), store=bot.config.store_dir)
    assert again.device_id == bot.device_id
    assert check_chain(keys_query(synapse, again, bot.user_id), bot.user_id, bot.device_id) == master

    # A second device of the same user (new store, same seeds) is signed by the same keys.
    import shutil

    other_store = tmp_path / "second-device"
    other_store.mkdir()
    shutil.copy(bot.config.store_dir / "cross_signing.json", other_store / "cross_signing.json")
    second = await make_client(user=(bot.user_id, bot.config.password), store=other_store)
    assert second.device_id != bot.device_id
    q = keys_query(synapse, observer, bot.user_id)
    assert check_chain(q, bot.user_id, second.device_id) == master
    assert check_chain(q, bot.user_id, bot.device_id) == master

    # Logged out behind its back: the next start retires the store and comes back as a
    # new device, signed by the same (kept) identity.
    req = urllib.request.Request(
        synapse.url + "/_matrix/client/v3/logout",
        data=b"{}",
        method="POST",
        headers={
            "Authorization": f"Bearer {second.nio_client.access_token}",
            "Content-Type": "application/json",
        },
    )
    urllib.request.urlopen(req, timeout=10).close()
    await second.stop()
    third = await make_client(user=(bot.user_id, bot.config.password), store=other_store)
    assert third.device_id != second.device_id
    q = keys_query(synapse, observer, bot.user_id)
    assert check_chain(q, bot.user_id, third.device_id) == master
    assert second.device_id not in q["device_keys"][bot.user_id]
