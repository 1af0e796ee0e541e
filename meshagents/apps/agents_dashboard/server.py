"""Run the dashboard: bind its sockets (mesh address + loopback), start the live state, serve.

    await serve(cfg, token)

The listening addresses default to the hub's mesh address (read from the hub's
``/healthz``, retried for up to 30 s while the hub starts) and 127.0.0.1. Sockets are
bound before uvicorn starts, so a missing address fails loudly instead of the
dashboard listening somewhere it should not. SIGTERM/SIGINT stop it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time

import uvicorn

from meshagents.apps.agents_dashboard.clients import BotClient, HubClient
from meshagents.apps.agents_dashboard.config import DashConfig
from meshagents.apps.agents_dashboard.live import Live
from meshagents.apps.agents_dashboard.sessions import SessionStore
from meshagents.apps.agents_dashboard.web import create_app
from meshagents.errors import FnError
from meshagents.listen import bind_listener

log = logging.getLogger("agents_dashboard")
HUB_WAIT_S = 30.0


def bind(host: str, port: int) -> socket.socket:
    return bind_listener(host, port, backlog=256)


async def listen_hosts(cfg: DashConfig, hub: HubClient) -> list[str]:
    if cfg.hosts:
        return list(cfg.hosts)
    deadline = time.monotonic() + HUB_WAIT_S
    while True:
        try:
            mesh = (await hub.healthz()).get("mesh_address")
            if isinstance(mesh, str) and mesh:
                return [mesh, "127.0.0.1"] if mesh != "127.0.0.1" else [mesh]
            raise FnError("hub_bad_answer", "the hub's /healthz names no mesh_address")
        except FnError as exc:
            if time.monotonic() > deadline:
                raise FnError(
                    "hub_unreachable", f"cannot learn the hub's mesh address ({exc.message}); pass --host"
                ) from exc
            await asyncio.sleep(1.0)


async def serve(cfg: DashConfig, token: str) -> None:
    hub = HubClient(cfg.hub_api, token)
    bot = BotClient(cfg.bot_api, token) if cfg.bot_api else None
    try:
        hosts = await listen_hosts(cfg, hub)
        socks = [bind(h, cfg.port) for h in hosts]
        live = Live(cfg, hub, bot)
        app = create_app(cfg, live, hub, bot, SessionStore(ttl_s=cfg.session_ttl_s), token)
        server = uvicorn.Server(
            uvicorn.Config(
                app, log_level="warning", access_log=False, lifespan="off", timeout_graceful_shutdown=2
            )
        )
        runner = asyncio.create_task(live.run())
        log.info("agents_dashboard on %s port %s; hub %s; bot %s", ",".join(hosts), cfg.port, cfg.hub_api,
                 cfg.bot_api or "none")  # fmt: skip
        print(f"agents_dashboard ready hosts={','.join(hosts)} port={cfg.port}", flush=True)
        try:
            await server.serve(sockets=socks)
        finally:
            runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await runner
            for s in socks:
                s.close()
    finally:
        await hub.aclose()
        if bot is not None:
            await bot.aclose()
