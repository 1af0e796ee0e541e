"""/enroll with a homeserver configured: the answer carries the device's Matrix account and room.

The hub runs in the root namespace here (its listeners on 127.0.0.1, free ports) so it
can reach the session's Synapse on loopback; its WireGuard interface is still the
mesh fixture's, in a namespace. The device side is the test itself (random keys).
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from nacl.signing import SigningKey

from meshagents.trust.sealing import unseal_answer
from meshagents.trust.signing import public_b64
from tests.testbed.hub_rig import ROOT
from tests.testbed.mesh import Mesh, require_mesh_tools
from tests.testbed.synapse import SynapseServer, free_port, synapse  # noqa: F401

pytestmark = [pytest.mark.integration, pytest.mark.root]


def test_enroll_with_matrix(synapse: SynapseServer, tmp_path: Path, state_dir: Path) -> None:  # noqa: F811
    from meshagents.runtime.api import call

    require_mesh_tools()
    operator, op_password = synapse.new_user("op")
    bot = synapse.configure_state(state_dir, operators=[operator])
    call("operator_key_init", caller="tests.hub")
    call("controller_key_init", caller="tests.hub")
    pub_port, op_port = free_port(), free_port()
    with Mesh(devices=0, workdir=tmp_path / "mesh") as mesh:
        cfg = tmp_path / "hub.toml"
        cfg.write_text(
            f'interface = "{mesh.hub.interface}"\nconfig_dir = "{mesh.hub.config_dir}"\n'
            f'netns = "{mesh.hub.netns}"\n'
            f'public_host = "127.0.0.1"\npublic_port = {pub_port}\noperator_port = {op_port}\n'
            f'operator_hosts = ["127.0.0.1"]\nendpoint = "198.19.99.1:51820"\n'
            f'[matrix]\nhomeserver_url = "{synapse.url}"\nserver_name = "{synapse.server_name}"\n'
        )
        hub = subprocess.Popen(
            [sys.executable, "-m", "meshagents.apps.wg_hub", "--config", str(cfg)],
            cwd=ROOT,
            env={**os.environ, "FN_STATE_DIR": str(state_dir)},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            for _ in range(100):
                try:
                    if httpx.get(f"http://127.0.0.1:{pub_port}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.1)
            name = synapse.unique("dev")
            token = call("enrollment_token_create", caller="tests.hub", device_name=name)["token"]
            device = SigningKey.generate()
            keys = {
                "wg_public_key": base64.b64encode(secrets.token_bytes(32)).decode(),
                "device_key": public_b64(device),
            }
            resp = httpx.post(
                f"http://127.0.0.1:{pub_port}/enroll", json={"token": token, **keys}, timeout=60
            )
            assert resp.status_code == 200, resp.text
            # on the wire the password is sealed to the device key; the device opens it
            assert "password" not in resp.json()["matrix"] and resp.json()["sealed"]["box"]
            m = unseal_answer(resp.json(), device)[0]["matrix"]
            assert (
                m["user_id"] == f"@dev-{name}:{synapse.server_name}" == resp.json()["manifest"]["matrix_user"]
            )
            assert resp.json()["manifest"]["approvers"] == [operator]  # from the Matrix settings
            assert m["approvals_room"] == f"#operator-approvals:{synapse.server_name}" and m["bot_users"] == [
                bot
            ]
            assert m["room_alias"] == f"#dev-{name}:{synapse.server_name}" and m["room_id"].startswith("!")
            login = httpx.post(
                f"{synapse.url}/_matrix/client/v3/login",
                json={"type": "m.login.password", "identifier": {"type": "m.id.user", "user": m["user_id"]},
                      "password": m["password"]},
                timeout=10,
            )  # fmt: skip
            assert login.status_code == 200, login.text
            device_auth = {"Authorization": f"Bearer {login.json()['access_token']}"}
            whoami = f"{synapse.url}/_matrix/client/v3/account/whoami"
            assert httpx.get(whoami, headers=device_auth, timeout=10).status_code == 200

            # revoke through the API: the device's user leaves its room
            def member_state() -> str:
                url = (
                    f"{synapse.url}/_matrix/client/v3/rooms/{m['room_id']}/state/m.room.member/{m['user_id']}"
                )
                r = httpx.get(url, headers=op_auth, timeout=10)
                return str(r.json().get("membership"))

            op_login = httpx.post(
                f"{synapse.url}/_matrix/client/v3/login",
                json={"type": "m.login.password", "identifier": {"type": "m.id.user", "user": operator},
                      "password": op_password},
                timeout=10,
            ).json()  # fmt: skip
            op_auth = {"Authorization": f"Bearer {op_login['access_token']}"}
            httpx.post(
                f"{synapse.url}/_matrix/client/v3/join/{m['room_id']}", headers=op_auth, json={}, timeout=10
            )
            assert member_state() == "invite"
            api_token = subprocess.run(
                [sys.executable, "-m", "meshagents.apps.wg_hub", "--show-api-token"],
                cwd=ROOT,
                env={**os.environ, "FN_STATE_DIR": str(state_dir)},
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
            revoked = httpx.post(
                f"http://127.0.0.1:{op_port}/api/peers/{name}/revoke",
                headers={"Authorization": f"Bearer {api_token}"},
                timeout=60,
            )
            assert revoked.status_code == 200, revoked.text
            # the kick runs after the answer (the API answers once the peer is off the interface)
            assert revoked.json()["matrix_kick"] == "started"
            deadline = time.monotonic() + 30
            while member_state() != "leave" and time.monotonic() < deadline:
                time.sleep(0.1)
            assert member_state() == "leave"
            for _ in range(100):  # the hub logs the kick's outcome right after doing it
                log = httpx.get(f"http://127.0.0.1:{op_port}/api/log", params={"kind": "matrix_kicked"},
                                headers={"Authorization": f"Bearer {api_token}"}, timeout=10).json()["log"]
                if log:
                    break
                time.sleep(0.1)
            assert log and json.loads(log[0]["detail"])["removed"] is True
            # and the device's account is locked out: its token is dead, its password no longer
            # logs in (a stolen or restarted agent cannot come back as a new session)
            assert json.loads(log[0]["detail"])["logout"] == {"logged_out": True, "password_changed": True}
            gone = httpx.get(whoami, headers=device_auth, timeout=10)
            assert gone.status_code == 401 and gone.json()["errcode"] == "M_UNKNOWN_TOKEN", gone.text
            again = httpx.post(
                f"{synapse.url}/_matrix/client/v3/login",
                json={"type": "m.login.password", "identifier": {"type": "m.id.user", "user": m["user_id"]},
                      "password": m["password"]},
                timeout=10,
            )  # fmt: skip
            assert again.status_code == 403 and again.json()["errcode"] == "M_FORBIDDEN", again.text
            # the hub still holds the account (the new password, 0600) and no session is left
            kept = json.loads((state_dir / "wg_hub" / "matrix" / f"{name}.json").read_text())
            assert kept["password"] != m["password"]
        finally:
            hub.terminate()
            hub.wait(10)
