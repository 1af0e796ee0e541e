"""The dashboard's Mesh panel at 10,000 peers: what one change costs the dashboard, and its memory.

    .venv/bin/python bench/bench_dashboard.py [--peers 10000] [--n 30]

The real dashboard app (create_app, Live, the jinja templates) in this process, driven
through Starlette's TestClient as a browser's fetches would; the hub's ``GET /api/peers``
is answered from bytes encoded once in the hub's own shape (what the hub sends: a bulk-
loaded mesh, not enrolled, as in bench_e2e), so what is timed is the dashboard's own
work. Prints, interleaved in the same run and each against its baseline:

1. one ``peer_stats`` event (one peer's counters changed) → the Mesh panel re-rendered
   (``GET /panels/mesh``: rows for every peer, the 500 shown (stale first), the HTML),
   p50 / p95, against encoding the same peers as JSON (``json.dumps``, what the hub does
   for ``/api/peers``) and against the small Status panel;
2. reading the peer list again (``Live.refresh_peers``: GET, JSON decode, rate tracker),
   against ``json.loads`` of the same bytes;
3. the whole cockpit page (every panel) once;
4. the process's RSS with 2 peers and with N peers loaded and rendered.
"""

from __future__ import annotations

import asyncio
import json
import re
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
from fastapi.testclient import TestClient

from meshagents.apps.agents_dashboard.clients import HubClient
from meshagents.apps.agents_dashboard.config import DashConfig
from meshagents.apps.agents_dashboard.live import Live
from meshagents.apps.agents_dashboard.sessions import SessionStore
from meshagents.apps.agents_dashboard.web import create_app
from meshagents.testbed import benchcli

TOKEN = "bench-dashboard-token"


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def hub_peer(i: int, now: float) -> dict[str, Any]:
    """A peer as the hub's ``GET /api/peers`` lists a bulk-loaded one (wg_hub Hub.peers)."""
    hs = now - (i % 400) if i % 3 else None  # a third never handshook, the rest spread 0-400 s
    return {
        "id": f"bench-{i}", "name": f"bench-{i}", "public_key": f"{i:042d}A=",
        "address": f"10.200.{i // 256}.{i % 256}", "status": "active", "live": True,
        "online": hs is not None and now - hs < 180, "latest_handshake": hs,
        "rx_bytes": 1000 * i, "tx_bytes": 2000 * i, "endpoint": "198.19.1.2:40000" if hs else None,
        "enrolled": False, "profile": None, "manifest_serial": None,
    }  # fmt: skip


def pct(samples: list[float], q: float) -> float:
    s = sorted(samples)
    return s[min(len(s) - 1, int(len(s) * q))]


def line(label: str, samples: list[float]) -> str:
    p50, p95 = statistics.median(samples) * 1e3, pct(samples, 0.95) * 1e3
    return f"{label:52s} p50 {p50:8.1f} ms   p95 {p95:8.1f} ms"


def main() -> None:
    args = benchcli.options(peers=(int, 10_000, "peers on the hub"), n=(int, 30, "samples of each"))
    now = time.time()
    state: dict[str, bytes] = {"peers": json.dumps({"peers": [hub_peer(i, now) for i in range(2)]}).encode()}

    def hub_api(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/peers":
            return httpx.Response(200, content=state["peers"], headers={"content-type": "application/json"})
        return httpx.Response(404, json={"error": "not_found", "message": request.url.path})

    cfg = DashConfig(hub_api="http://hub", bot_api=None, hosts=("127.0.0.1",))
    hub = HubClient(cfg.hub_api, TOKEN, transport=httpx.MockTransport(hub_api))
    live = Live(cfg, hub, None)
    app = create_app(cfg, live, hub, None, SessionStore(), TOKEN)
    client = TestClient(app, base_url="http://127.0.0.1:8080")
    asyncio.run(live.refresh_peers())
    assert client.post("/login", data={"token": TOKEN}, follow_redirects=False).status_code == 303
    client.get("/panels/mesh")
    rss_small = rss_mb()

    peers = [hub_peer(i, now) for i in range(args.peers)]
    state["peers"] = json.dumps({"peers": peers}).encode()
    asyncio.run(live.refresh_peers())
    html = client.get("/panels/mesh").text
    shown = len(re.findall(r'data-peer="', html))

    def event(i: int) -> None:  # what Live.handle does with one hub peer_stats event
        p = live.peers[i % len(live.peers)]
        changed = {"public_key": p["public_key"], "latest_handshake": time.time(),
                   "rx_bytes": int(p["rx_bytes"]) + 1, "tx_bytes": int(p["tx_bytes"]) + 1}  # fmt: skip
        live.handle({"type": "peer_stats", "data": {"polled_at": time.time(), "changed": [changed]}})

    def timed(fn: Callable[[], object]) -> float:
        t0 = time.perf_counter()
        fn()
        return time.perf_counter() - t0

    t_event, t_mesh, t_status, t_dumps, t_refresh, t_loads = [], [], [], [], [], []
    body = state["peers"]
    for i in range(args.n):  # interleaved: every figure sees the same machine load
        t_event.append(timed(lambda i=i: event(i)))  # type: ignore[misc]
        t_mesh.append(timed(lambda: client.get("/panels/mesh")))
        live.notify({"status"})
        t_status.append(timed(lambda: client.get("/panels/status")))
        t_dumps.append(timed(lambda: json.dumps(live.peers)))
        if i % 3 == 0:
            t_refresh.append(timed(lambda: asyncio.run(live.refresh_peers())))
            t_loads.append(timed(lambda: json.loads(body)))
    t_page = timed(lambda: client.get("/"))
    rss_big = rss_mb()
    print(f"dashboard, {args.peers} peers on the hub ({len(body) / 1e6:.1f} MB of /api/peers); "
          f"Mesh panel {len(html) / 1e3:.0f} kB, {shown} rows shown (cap {cfg.mesh_rows})")  # fmt: skip
    print(line("baseline: json.dumps of the peers (the hub's encode)", t_dumps))
    print(line("baseline: Status panel after a change", t_status))
    print(line("one peer_stats event folded in (Live.handle)", t_event))
    print(line("Mesh panel after a change (GET /panels/mesh)", t_mesh))
    ratio = statistics.median(m / d for m, d in zip(t_mesh, t_dumps, strict=True))
    print(f"{'  Mesh panel / json.dumps, median pair':52s} {ratio:6.2f} x")
    print(line("baseline: json.loads of /api/peers", t_loads))
    print(line("peer list read again (Live.refresh_peers)", t_refresh))
    print(f"{'whole cockpit page (GET /), once':52s} {t_page * 1e3:8.1f} ms")
    print(f"{'RSS with 2 peers / with ' + str(args.peers):52s} {rss_small:8.1f} / {rss_big:.1f} MB")


if __name__ == "__main__":
    main()
