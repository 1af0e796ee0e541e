"""The operator's recovery key against a real Synapse: secret storage as Element reads it.

(The Element-stack session that verifies itself with this key: tests/e2e/test_element.py.)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from meshagents.errors import FnError
from meshagents.matrix import crosssign
from meshagents.matrix import secretstore as ss
from meshagents.matrix.recovery import Account, create_recovery, recovery_status, rotate_recovery
from tests.testbed.matrix_clients import MakeClient
from tests.testbed.synapse import SynapseServer

pytestmark = pytest.mark.integration


def _login(http: httpx.Client, user: str, password: str) -> None:
    ident = {"type": "m.id.user", "user": user}
    body = {"type": "m.login.password", "identifier": ident, "password": password}
    token = http.post("/_matrix/client/v3/login", json=body).json()["access_token"]
    http.headers["Authorization"] = f"Bearer {token}"


def account_data(synapse: SynapseServer, user: str, password: str) -> dict[str, Any]:
    with httpx.Client(base_url=synapse.url, timeout=30) as http:
        _login(http, user, password)
        out: dict[str, Any] = {}
        names = [ss.DEFAULT_KEY_EVENT, *ss.CROSS_SIGNING_SECRETS, ss.BACKUP_SECRET]
        for name in names:
            r = http.get(f"/_matrix/client/v3/user/{user}/account_data/{name}")
            out[name] = r.json() if r.status_code == 200 else None
        key_id = (out[ss.DEFAULT_KEY_EVENT] or {}).get("key")
        if key_id:
            out["description"] = http.get(
                f"/_matrix/client/v3/user/{user}/account_data/{ss.KEY_EVENT_PREFIX}{key_id}"
            ).json()
        out["backup"] = http.get("/_matrix/client/v3/room_keys/version").json()
        http.post("/_matrix/client/v3/logout", json={})
        return out


def read_key(data: dict[str, Any], user: str, password: str, synapse: SynapseServer, key_id: str) -> Any:
    with httpx.Client(base_url=synapse.url, timeout=30) as http:
        _login(http, user, password)
        return http.get(f"/_matrix/client/v3/user/{user}/account_data/{ss.KEY_EVENT_PREFIX}{key_id}").json()


async def test_create_and_rotate(synapse: SynapseServer, make_client: MakeClient, tmp_path: Path) -> None:
    op = await make_client("rk")  # uploads its cross-signing identity
    user, password = op.user_id, op.config.password
    seeds_path = op.config.store_dir / "cross_signing.json"
    seeds = crosssign.CrossSigningSeeds.from_json(json.loads(seeds_path.read_text()))
    acct = Account(synapse.url, user, password, seeds_path)

    first = create_recovery(acct)
    key = ss.decode_recovery_key(first.recovery_key)
    data = account_data(synapse, user, password)
    assert data[ss.DEFAULT_KEY_EVENT] == {"key": first.key_id}
    assert ss.key_matches(key, data["description"])
    for name, secret in ss.cross_signing_secrets(seeds).items():
        assert ss.read_secret(data[name], first.key_id, key, name) == secret
    stored_backup = ss.read_secret(data[ss.BACKUP_SECRET], first.key_id, key, ss.BACKUP_SECRET)
    backup_private = ss.b64_decode(stored_backup)
    assert data["backup"]["algorithm"] == ss.BACKUP_ALGORITHM
    assert data["backup"]["auth_data"]["public_key"] == ss.backup_public_key(backup_private)
    assert crosssign.verify_json(data["backup"]["auth_data"], user, seeds.master_public, seeds.master_public)
    assert acct.backup_key_path.stat().st_mode & 0o777 == 0o600

    with pytest.raises(FnError) as exc:
        create_recovery(acct)
    assert exc.value.code == "recovery_key_exists"

    second = rotate_recovery(acct)
    assert second.key_id != first.key_id and second.backup_version == first.backup_version
    new_key = ss.decode_recovery_key(second.recovery_key)
    data = account_data(synapse, user, password)
    assert data[ss.DEFAULT_KEY_EVENT] == {"key": second.key_id}
    for name in [*ss.CROSS_SIGNING_SECRETS, ss.BACKUP_SECRET]:
        assert set(data[name]["encrypted"]) == {second.key_id}  # the old key opens nothing
        ss.read_secret(data[name], second.key_id, new_key, name)
        with pytest.raises(FnError):
            ss.read_secret(data[name], first.key_id, key, name)
    assert not ss.key_matches(key, read_key(data, user, password, synapse, first.key_id))
    status = recovery_status(acct)
    assert status["key_id"] == second.key_id and len(status["secrets"]) == 4
    assert status["master_key"] == seeds.master_public


async def test_refuses_seeds_that_are_not_the_published_identity(
    synapse: SynapseServer, make_client: MakeClient, tmp_path: Path
) -> None:
    op = await make_client("rk2")
    other = tmp_path / "other" / "cross_signing.json"
    other.parent.mkdir()
    other.write_text(json.dumps(crosssign.CrossSigningSeeds.generate().to_json()))
    with pytest.raises(FnError) as exc:
        create_recovery(Account(synapse.url, op.user_id, op.config.password, other))
    assert exc.value.code == "cross_signing_mismatch"
