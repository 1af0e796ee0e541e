"""Two uvicorn servers in one process, each on its own sockets.

The public server gets one socket on ``public_host:public_port``; the operator server
gets one socket per operator host (the mesh address and 127.0.0.1 by default) on
``operator_port``. Sockets are bound here, before uvicorn starts, so a missing mesh
address fails the start loudly instead of silently listening somewhere else.
Signals: SIGTERM/SIGINT stop both servers (uvicorn's own per-server handlers are
turned off, since two servers in one loop would each take the signal from the other).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
from collections.abc import Iterator
from typing import Any

import uvicorn

from meshagents.apps.wg_hub.config import HubConfig
from meshagents.apps.wg_hub.enroll import Hub, api_token
from meshagents.apps.wg_hub.events import EventBus, Stats, poll_forever
from meshagents.apps.wg_hub.web import operator_app, public_app
from meshagents.listen import bind_listener
from meshagents.wg.backend import open_backend
from meshagents.wg.hub import resolve_netns

log = logging.getLogger("wg_hub")


def bind(host: str, port: int) -> socket.socket:
    return bind_listener(host, port, backlog=1024)


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # main() owns the signals for both servers


def stats_reader(hub: Hub) -> Any:
    """What the poller reads: the live interface's peers (one UAPI get) and their names."""
    ns = resolve_netns(hub.paths, hub.cfg.netns)
    names: dict[str, str] = {}

    def read() -> tuple[Stats, dict[str, Any]]:
        state = open_backend(hub.cfg.interface, ns).state()
        stats = {p.public_key: (p.last_handshake, p.rx_bytes, p.tx_bytes) for p in state.peers}
        if any(k not in names for k in stats):
            with hub.paths.ledger() as led:
                names.update({k: v[0] for k, v in led.names().items()})
        return stats, names

    return read


async def serve(cfg: HubConfig) -> None:
    bus = EventBus()
    bus.bind(asyncio.get_running_loop())
    hub = Hub(cfg, bus)
    bus.attach_journal(hub.store, hub.store.next_boot())  # ids grow across restarts; resume works
    token = api_token(cfg)
    public_socks = [bind(cfg.public_host, cfg.public_port)]
    operator_socks = [bind(h, cfg.operator_port) for h in hub.operator_hosts()]
    servers = [
        _Server(uvicorn.Config(public_app(hub), log_level="warning", access_log=False, lifespan="off")),
        _Server(
            uvicorn.Config(operator_app(hub, token), log_level="warning", access_log=False, lifespan="off")
        ),
    ]
    loop = asyncio.get_running_loop()

    def stop() -> None:
        for s in servers:
            s.should_exit = True

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop)
    poller = asyncio.create_task(poll_forever(bus, stats_reader(hub), cfg.events_period_s))
    log.info(
        "wg_hub listening: public %s:%s (enroll), operator %s port %s; interface %s",
        cfg.public_host, cfg.public_port, ",".join(hub.operator_hosts()), cfg.operator_port, cfg.interface,
    )  # fmt: skip
    print(
        f"wg_hub ready public={cfg.public_host}:{cfg.public_port} operator_port={cfg.operator_port}",
        flush=True,
    )
    try:
        await asyncio.gather(servers[0].serve(sockets=public_socks), servers[1].serve(sockets=operator_socks))
    finally:
        poller.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await poller
        for s in public_socks + operator_socks:
            s.close()
        hub.ctx.close()
