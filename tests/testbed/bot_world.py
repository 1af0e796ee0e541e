"""A real Synapse, the bot (BotShell over a FileDirectory of signed manifests), an
operator and a stranger on the Matrix client base, and a minimal test device.

The test device stands in for the device agent: a MatrixClient for the device's user
that checks each envelope with the trust core (``envelope.verify``, the approval looked
up in #operator-approvals with ``meshagents.trust.approval.check_approval``; it reads no
history between R and A, which the real agent's tests cover) and answers with a
``RESULT_EVENT``. It runs nothing.

    world = await make_world(approval_ttl_s=3)
    ev = await world.say("!exec ls /tmp")                    # the operator, in the device room
    notice = await world.notice(world.device_room, lambda t: ...)
    row = await world.row(request_id, "ok")                  # the bot's dispatch row
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from nacl.signing import SigningKey

from meshagents.apps.agents_and_robots.directory import (
    DeviceDirectory,
    FileDirectory,
    HubApi,
    HubDirectory,
    HubLike,
    LocalHub,
)
from meshagents.apps.agents_and_robots.dispatches import Dispatch, DispatchStore
from meshagents.apps.agents_and_robots.shell import BotShell, ShellConfig
from meshagents.bus import APPROVAL_REQUEST_KEY, ENVELOPE_EVENT, RESULT_EVENT
from meshagents.matrix.client import Incoming, MatrixClient
from meshagents.matrix.rooms import power_levels
from meshagents.trust import envelope as trust_envelope
from meshagents.trust import manifest as trust_manifest
from meshagents.trust.approval import check_approval
from meshagents.trust.keystore import CONTROLLER_KEY, init_signing_key
from meshagents.trust.models import Envelope, Manifest
from meshagents.trust.noncestore import NonceStore
from meshagents.trust.signing import public_b64
from tests.testbed.synapse import SynapseServer, synapse  # noqa: F401 - re-exported fixture

FAST: dict[str, Any] = {"backoff_max": 1.0, "sync_timeout_ms": 3_000}

CAPABILITIES: list[dict[str, Any]] = [
    {"name": "shell.exec.ls", "executables": ["/usr/bin/ls"], "path_prefixes": ["/tmp"], "timeout_s": 10},
    {"name": "shell.exec.echo", "executables": ["/usr/bin/echo"], "requires_approval": True, "timeout_s": 10},
]


def _event_dict(ev: Incoming) -> dict[str, Any]:
    return {"type": ev.type, "content": ev.content, "sender": ev.sender, "event_id": ev.event_id}


class TestDevice:
    """The minimal device: verify with the trust core, answer with a result event."""

    def __init__(self, client: MatrixClient, manifest: Manifest, nonces: NonceStore, approvals_room: str,
                 bot_user: str) -> None:
        self.client = client
        self.manifest = manifest
        self.nonces = nonces
        self.approvals_room = approvals_room
        self.bot_user = bot_user
        self.results: list[dict[str, Any]] = []
        client.on_custom_event(ENVELOPE_EVENT, self._on_envelope)

    async def _approval_ok(self, env: Envelope, request_event: str | None) -> bool:
        if not env.approval or not request_event:
            return False
        a = await self.client.get_event(self.approvals_room, env.approval)
        r = await self.client.get_event(self.approvals_room, request_event)
        verdict = check_approval(
            envelope=env, manifest=self.manifest, approval=_event_dict(a), approval_verified=a.verified,
            request=_event_dict(r), request_verified=r.verified, between=[], now=int(time.time()))
        return verdict.ok

    async def _on_envelope(self, ev: Incoming) -> None:
        raw = ev.content.get("envelope")
        if not isinstance(raw, dict):
            return
        approved = False
        try:
            env = Envelope.model_validate(raw)
            approved = await self._approval_ok(env, ev.content.get("approval_request_event"))
        except Exception:  # a malformed envelope or a failed look-up: verify refuses below
            approved = False
        res = trust_envelope.verify(raw, self.manifest, self.nonces, approval_check=lambda _e, _m: approved,
                                    consume=True, resolve=False)
        result = {"request_id": str(raw.get("request_id", "")), "device_id": self.manifest.device_id,
                  "status": res.status, "exit_code": None, "output": res.reason, "truncated": False,
                  "audit_seq": None, "duration_ms": 0}
        self.results.append(result)
        await self.client.send_custom(ev.room_id, RESULT_EVENT, result)


@dataclass
class World:
    synapse: SynapseServer
    root: Path
    shell: BotShell
    operator: MatrixClient
    stranger: MatrixClient
    device: TestDevice
    name: str
    device_room: str
    approvals_room: str
    manifests: Path
    clients: list[MatrixClient]
    messages: dict[str, list[Incoming]] = field(default_factory=dict)  # room -> what the operator saw
    envelopes: list[Incoming] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def say(self, text: str, room: str | None = None, who: MatrixClient | None = None) -> str:
        return await (who or self.operator).send_text(room or self.device_room, text)

    async def wait(self, probe: Callable[[], Any], timeout: float = 20.0, what: str = "") -> Any:
        deadline = time.monotonic() + timeout
        while True:
            got = probe()
            if got:
                return got
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what or probe}")
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), 0.25)

    async def envelope_for(self, cmd: str, what: str = "the envelope", timeout: float = 20.0) -> Incoming:
        """The envelope event the bot sent for the operator's command event ``cmd``."""
        envs: list[Incoming] = await self.wait(
            lambda: [e for e in self.envelopes if e.content.get("reply_to") == cmd], timeout, what
        )
        return envs[0]

    async def notice(self, room: str, match: Callable[[str], bool], timeout: float = 20.0) -> Incoming:
        def probe() -> Incoming | None:
            for ev in self.messages.get(room, []):
                if ev.sender == self.shell.client.user_id and match(ev.body or ""):
                    return ev
            return None
        found: Incoming = await self.wait(probe, timeout, f"a bot message in {room}")
        return found

    async def request(self, timeout: float = 20.0) -> Incoming:
        """The newest approval request R the bot posted."""
        def probe() -> Incoming | None:
            seen = self.messages.get(self.approvals_room, [])
            reqs = [e for e in seen if APPROVAL_REQUEST_KEY in e.content]
            return reqs[-1] if reqs else None
        found: Incoming = await self.wait(probe, timeout, "an approval request")
        return found

    def store(self) -> DispatchStore:
        return self.shell.store

    async def row(self, request_id: str, status: str, timeout: float = 20.0) -> Dispatch:
        def probe() -> Dispatch | None:
            row = self.store().get(request_id)
            return row if row is not None and row.status == status else None
        found: Dispatch = await self.wait(probe, timeout, f"dispatch {request_id} -> {status}")
        return found

    def latest_row(self) -> Dispatch:
        rows = self.store().recent(1)
        assert rows, "no dispatch rows"
        return rows[0]


MakeWorld = Callable[..., Awaitable[World]]


class StandInHub:
    """The hub's operator API as far as the bot uses it (``GET /api/peers``, ``POST
    /api/peers/{id}/revoke``, bearer token), on a loopback port: the real hub is built
    in meshagents/apps/wg_hub and needs WireGuard; the bot only needs these two routes."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.peers: dict[str, dict[str, Any]] = {}
        self.revoked: list[str] = []
        self._runner: web.AppRunner | None = None
        self.url = ""

    def _auth(self, request: web.Request) -> None:
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            raise web.HTTPUnauthorized(text=json.dumps({"error": "unauthorized", "message": "token"}),
                                       content_type="application/json")

    async def _peers(self, request: web.Request) -> web.Response:
        self._auth(request)
        return web.json_response({"peers": list(self.peers.values())})

    async def _revoke(self, request: web.Request) -> web.Response:
        self._auth(request)
        name = request.match_info["device_id"]
        if name not in self.peers:
            return web.json_response({"error": "peer_unknown", "message": f"no peer {name!r}"}, status=404)
        self.peers[name]["status"] = "revoked"
        self.revoked.append(name)
        return web.json_response({"name": name, "revoked": True})

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/api/peers", self._peers)
        app.router.add_post("/api/peers/{device_id}/revoke", self._revoke)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


def sign_manifest(key: SigningKey, *, name: str, matrix_user: str, approvers: list[str], controller: str,
                  capabilities: list[dict[str, Any]], bot_users: list[str] | None = None) -> dict[str, Any]:
    now = int(time.time())
    body = {
        "type": "meshagents.manifest.v1", "device_id": name, "device_name": name,
        "device_key": public_b64(SigningKey.generate()), "wg_public_key": public_b64(SigningKey.generate()),
        "mesh_address": "10.42.0.10", "matrix_user": matrix_user, "approvers": approvers,
        "controllers": [controller], "capabilities": capabilities, "serial": 1, "issued_at": now,
        "expires_at": now + 86400, "operator_key": public_b64(key),
        **({"bot_users": bot_users} if bot_users else {}),
    }
    return trust_manifest.sign(body, key).model_dump(mode="json")


@pytest.fixture
async def make_world(synapse: SynapseServer, tmp_path: Path, state_dir: Path) -> AsyncIterator[MakeWorld]:  # noqa: F811
    worlds: list[World] = []
    clients: list[MatrixClient] = []
    shells: list[BotShell] = []
    hubs: list[StandInHub] = []

    async def make(*, hub: StandInHub | None = None, **shell_kw: Any) -> World:
        controller, _ = init_signing_key(CONTROLLER_KEY)  # in this test's FN_STATE_DIR key store
        operator_key = SigningKey.generate()
        op_user, op_pw = synapse.new_user("operator")
        bot_user, bot_pw = synapse.new_user("bot")
        dev_user, dev_pw = synapse.new_user("device")
        eve_user, eve_pw = synapse.new_user("eve")
        name = synapse.unique("dev")
        manifests = tmp_path / "manifests"
        manifests.mkdir()
        signed = sign_manifest(operator_key, name=name, matrix_user=dev_user, approvers=[op_user],
                               controller=public_b64(controller), capabilities=CAPABILITIES,
                               bot_users=[bot_user])
        (manifests / f"{name}.json").write_text(json.dumps(signed))
        manifest = trust_manifest.verify(signed, public_b64(operator_key))

        async def client(user: str, pw: str, store: str, **kw: Any) -> MatrixClient:
            c = MatrixClient(synapse.client_config(user, pw, tmp_path / store, **{**FAST, **kw}))
            clients.append(c)
            await c.start()
            return c

        operator, stranger, dev = await asyncio.gather(  # in parallel: each start is ~1.5 s
            client(op_user, op_pw, "operator", accept_invites_from=(bot_user,)),
            client(eve_user, eve_pw, "eve", accept_invites_from=(bot_user, op_user)),
            client(dev_user, dev_pw, "device", operators=(op_user, bot_user),
                   accept_invites_from=(bot_user, op_user)))
        # the device room as the Matrix layer makes it: operator 100, bot 50 (may kick), device 0
        if hub is not None:
            hubs.append(hub)
            await hub.start()
        room = await operator.create_room(alias=f"dev-{name}", name=f"dev {name}",
                                          invite=[bot_user, dev_user, eve_user],
                                          power_levels=power_levels([op_user], bot_user, dev_user))

        approvals_alias = synapse.unique("operator-approvals")
        cfg = ShellConfig(
            client=synapse.client_config(bot_user, bot_pw, tmp_path / "bot", **FAST),
            server_name=synapse.server_name, operators=(op_user,), approvals_alias=approvals_alias,
            control_port=0, control_token="tok-" + secrets.token_hex(8), poll_s=0.5, tick_s=0.5,
            store_path=tmp_path / "operations.db", **shell_kw)
        files = FileDirectory(manifests, operator_key=public_b64(operator_key))
        directory: DeviceDirectory = files
        hub_api: HubLike = LocalHub(manifests)
        if hub is not None:  # peers (revoked, handshakes) from the hub's API, manifests from the files
            hub.peers[name] = {"id": name, "name": name, "status": "active", "latest_handshake": None}
            hub_api = HubApi(hub.url, hub.token)
            directory = HubDirectory(hub_api, fallback=files, operator_key=public_b64(operator_key))
        shell = BotShell(cfg, directory=directory, hub=hub_api)

        # what the operator sees, collected before anything is said
        world_ref: list[World] = []

        async def seen(ev: Incoming) -> None:
            if world_ref:
                world_ref[0].messages.setdefault(ev.room_id, []).append(ev)
                world_ref[0].changed.set()

        async def envelope(ev: Incoming) -> None:
            if world_ref:
                world_ref[0].envelopes.append(ev)
                world_ref[0].changed.set()

        operator.on_message(seen)
        operator.on_custom_event(ENVELOPE_EVENT, envelope)
        shells.append(shell)
        await shell.start()
        assert shell.approvals_room is not None
        approvals = shell.approvals_room
        nonces = NonceStore(tmp_path / "nonces.db")
        device = TestDevice(dev, manifest, nonces, approvals, bot_user)
        world = World(synapse, tmp_path, shell, operator, stranger, device, name, room, approvals, manifests,
                      clients)
        world_ref.append(world)
        worlds.append(world)
        # everyone in place before the first word: keys are shared with members only
        await operator.wait_for_member(room, bot_user, timeout=30)
        await operator.wait_for_member(room, dev_user, timeout=30)
        await operator.wait_for_member(room, eve_user, timeout=30)
        await operator.wait_for_member(approvals, op_user, timeout=30)
        await shell.client.wait_for_member(approvals, dev_user, timeout=30)
        await shell.client.wait_for_member(approvals, op_user, timeout=30)
        assert room in shell._rooms  # the bot mapped the device room by its alias
        return world

    yield make
    for h in hubs:
        await h.stop()
    for shell in shells:
        await shell.stop()
    for c in clients:
        await c.stop()
