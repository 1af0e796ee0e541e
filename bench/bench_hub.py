"""wg_hub: enrollment from token to first handshake, and the SSE update delay at 10,000 peers.

    .venv/bin/python bench/bench_hub.py [--devices 8] [--period 1.0] [--trials 12] [--peers 10000]

(root; wireguard-go, nftables). Builds the integration rig (tests/integration/apps/wg_hub):
a hub namespace running the real wg_hub service, device namespaces, all per-run names,
torn down at the end. Prints, in one run:

  1. enrollment, in-process on the device side (what the pipeline's steps do, without
     the Python start-up of each ``./fn run``): enrollment_submit (HTTP + the hub's
     token check, wg_peer_add with its git commit, manifest signing + the device's
     verification), wg_client_install, then the wait for the first handshake; and the
     whole ``pipelines/enroll_device`` (one ``device_enroll`` process) as a subprocess;
  2. revoke: ``POST /api/peers/{id}/revoke`` answered, and the ``peer_revoked`` event at
     a subscriber of ``/api/events`` (the bot's own ``HubApi.events``), both from the
     moment the call is made (aim: <= 100 ms), beside ``GET /healthz`` on the same
     kept-alive connection; again with 10,000 peers in section 3 (``--peers 0`` stops
     after section 2);
  3. with 10,000 peers on the hub interface and in the ledger (bulk-loaded the
     WireGuard layer's way, one UAPI set per 500 peers): the cost of one poll, and
     the delay from a device sending traffic to the ``peer_stats`` SSE event that
     names it, at events_period_s = --period.
"""

from __future__ import annotations

import base64
import json
import os
import random
import secrets
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx

from meshagents.runtime.api import call
from meshagents.testbed import benchcli
from meshagents.testbed.benchkit import bulk_peers
from meshagents.wg.userspace import UserspaceBackend
from tests.testbed.hub_rig import OPERATOR_PORT, DeviceNs, HubRig, hub_rig_cm, in_netns


def stats(samples: list[float]) -> str:
    s = sorted(samples)
    p95 = s[max(0, round(len(s) * 0.95) - 1)]
    return f"median {statistics.median(s) * 1000:8.1f} ms   p95 {p95 * 1000:8.1f} ms   (n={len(s)})"


def kick(address: str) -> None:
    """One UDP datagram into the mesh: WireGuard handshakes to carry it."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(b"x", (address, 9))


def enroll_in_process(rig: HubRig, dev: DeviceNs) -> dict[str, float]:
    token = rig.token(dev.name)
    os.environ["FN_STATE_DIR"] = str(dev.state)
    try:
        t0 = time.perf_counter()
        call("device_key_init", caller="bench_hub")
        out = in_netns(
            dev.netns, call, "enrollment_submit", caller="bench_hub", token=token, hub_url=rig.public_url
        )
        t1 = time.perf_counter()
        call(
            "wg_client_install",
            caller="bench_hub",
            config_file=Path(out["client_config"]),
            private_key_file=Path(out["wg_private_key_file"]),
            interface=dev.interface,
            config_dir=dev.config_dir,
            netns=dev.netns,
            systemd=False,
        )
        t2 = time.perf_counter()
        in_netns(dev.netns, kick, "10.42.0.1")
        be = UserspaceBackend(dev.interface, dev.netns)
        while not (be.state().peers and be.state().peers[0].last_handshake):
            time.sleep(0.001)
        t3 = time.perf_counter()
    finally:
        os.environ["FN_STATE_DIR"] = str(rig.state)
    return {"submit": t1 - t0, "install": t2 - t1, "handshake": t3 - t2, "total": t3 - t0}


def revoke_figures(rig: HubRig, devices: list[DeviceNs]) -> tuple[list[float], list[float], list[float]]:
    """(API answered, peer_revoked event received, ``GET /healthz`` baseline) in seconds, per device.

    The revoke and its baseline go over one kept-alive connection of one client (the bot's
    kind: ``HubApi``'s TLS context, no connect or client set-up inside the figure): the
    baseline is five ``GET /healthz`` on it just before each revoke."""
    import asyncio

    from meshagents.apps.agents_and_robots.directory import HubApi, tls_context

    answered: list[float] = []
    pushed: list[float] = []
    floor: list[float] = []
    url = f"http://127.0.0.1:{OPERATOR_PORT}"

    async def one(dev: DeviceNs) -> None:
        api = HubApi(url, rig.api_token)
        got = asyncio.Event()
        t0 = 0.0

        async def listen() -> None:
            async for ev in api.events():
                if ev.type == "peer_revoked" and ev.data.get("device_id") == dev.name:
                    pushed.append(time.perf_counter() - t0)
                    got.set()
                    return

        task = asyncio.create_task(listen())
        await asyncio.sleep(0.3)  # connected
        async with httpx.AsyncClient(timeout=30, verify=tls_context()) as http:
            (await http.get(f"{url}/healthz")).raise_for_status()  # the connection, made once
            for _ in range(5):
                t = time.perf_counter()
                (await http.get(f"{url}/healthz")).raise_for_status()
                floor.append(time.perf_counter() - t)
            t0 = time.perf_counter()
            r = await http.post(f"{url}/api/peers/{dev.name}/revoke",
                                headers={"Authorization": f"Bearer {rig.api_token}"})
            answered.append(time.perf_counter() - t0)
        assert r.status_code == 200, r.text
        await asyncio.wait_for(got.wait(), 10)
        task.cancel()

    for dev in devices:
        in_netns(rig.hub_ns, asyncio.run, one(dev))
    return answered, pushed, floor


def key() -> str:
    return base64.b64encode(secrets.token_bytes(32)).decode()


def load_peers(rig: HubRig, count: int) -> None:
    hub = rig.mesh.hub
    bulk_peers(hub.interface, hub.netns, hub.config_dir / ".meshagents" / f"{hub.interface}.sqlite", count)


class SseClient:
    def __init__(self, rig: HubRig) -> None:
        self.rig = rig
        self.events: list[tuple[float, int, dict[str, Any]]] = []
        self.ready = threading.Event()
        self.stop = False
        self.thread = threading.Thread(target=in_netns, args=(rig.hub_ns, self.run), daemon=True)
        self.thread.start()
        self.ready.wait(10)

    def run(self) -> None:
        headers = {"Authorization": f"Bearer {self.rig.api_token}"}
        url = f"http://127.0.0.1:{OPERATOR_PORT}/api/events"
        with httpx.stream("GET", url, headers=headers, timeout=None) as resp:
            self.ready.set()
            for line in resp.iter_lines():
                if self.stop:
                    return
                if line.startswith("data:"):
                    self.events.append((time.perf_counter(), len(line), json.loads(line[5:])))


def main() -> None:
    args = benchcli.options(devices=(int, 8), period=(float, 1.0), trials=(int, 12), peers=(int, 10_000))
    if os.geteuid() != 0:
        sys.exit("bench_hub needs root (network namespaces, wireguard-go)")
    work = Path(tempfile.mkdtemp(prefix="bench-hub-"))
    state = work / "hub-state"
    state.mkdir(mode=0o700)
    with hub_rig_cm(work, state) as rig:
        print(f"hub {rig.mesh.hub.interface} in {rig.hub_ns}, service at {rig.public_url}\n")
        print(f"1. enrollment from token to first handshake ({args.devices} devices, in-process device side)")
        rows = [enroll_in_process(rig, rig.new_device()) for _ in range(args.devices)]
        for part, label in (
            ("submit", "enrollment_submit (HTTP, hub: verify+peer add+sign; device: verify)"),
            ("install", "wg_client_install (wireguard-go up, routes)"),
            ("handshake", "first handshake after the first packet"),
            ("total", "token -> first handshake"),
        ):
            print(f"   {label:<70} {stats([r[part] for r in rows])}")
        pipe = []
        for _ in range(3):
            dev = rig.new_device()
            t0 = time.perf_counter()
            proc = rig.enroll(dev, rig.token(dev.name))
            assert proc.returncode == 0, proc.stderr
            pipe.append(time.perf_counter() - t0)
        print(f"   {'pipelines/enroll_device, whole (one process: device_enroll)':<70} {stats(pipe)}\n")

        print(f"2. revoke ({args.devices} devices, {len(rig.devices)} peers on the hub)")
        answered, pushed, floor = revoke_figures(rig, rig.devices[: args.devices])
        print(f"   {'POST /api/peers/{id}/revoke answered (aim <= 100 ms)':<70} {stats(answered)}")
        print(f"   {'peer_revoked at an /api/events subscriber (HubApi.events)':<70} {stats(pushed)}")
        print(f"   {'baseline: GET /healthz on the same kept-alive connection':<70} {stats(floor)}")
        print(f"   machine load: {Path('/proc/loadavg').read_text().strip()}\n")
        if args.peers == 0:
            return
        spare = [rig.new_device() for _ in range(3)]
        for dev in spare:
            proc = rig.enroll(dev, rig.token(dev.name))
            assert proc.returncode == 0, proc.stderr

        print(f"3. SSE peer_stats delay with {args.peers:,} peers (events_period_s = {args.period})")
        t0 = time.perf_counter()
        load_peers(rig, args.peers)
        print(f"   bulk-loaded {args.peers:,} peers in {time.perf_counter() - t0:.1f} s (not measured)")
        rig.stop()
        rig.start(events_period_s=args.period)
        hub = rig.mesh.hub
        be = UserspaceBackend(hub.interface, hub.netns)
        polls = []
        for _ in range(7):
            t = time.perf_counter()
            n = len(be.state().peers)
            polls.append(time.perf_counter() - t)
        print(f"   one poll of the interface ({n:,} peers, UAPI get + parse)          {stats(polls)}")
        client = SseClient(rig)
        device = spare[0]  # (the first devices were revoked in section 2)
        pub = next(p for p in rig.operator("GET", "/api/peers").json()["peers"] if p["name"] == device.name)
        delays, sizes = [], []

        time.sleep(args.period * 2.5)  # past the first (full) event
        first = [e for e in client.events if e[2]["type"] == "peer_stats"]
        for _ in range(args.trials):
            time.sleep(random.uniform(0, args.period))
            mark = len(client.events)
            t_send = time.perf_counter()
            in_netns(device.netns, kick, "10.42.0.1")
            deadline = time.perf_counter() + args.period * 4 + 5
            hit = None
            while hit is None and time.perf_counter() < deadline:
                for at, size, ev in client.events[mark:]:
                    changed = ev["data"].get("changed", []) if ev["type"] == "peer_stats" else []
                    if at >= t_send and any(c["public_key"] == pub["public_key"] for c in changed):
                        hit = (at, size)
                        break
                time.sleep(0.002)
            if hit is None:
                print("   (an update did not arrive)")
                continue
            delays.append(hit[0] - t_send)
            sizes.append(hit[1])
        client.stop = True
        answered, pushed, _ = revoke_figures(rig, spare)
        print(f"   revoke with {args.peers:,} peers: API answered                     {stats(answered)}")
        print(f"   revoke with {args.peers:,} peers: peer_revoked at a subscriber     {stats(pushed)}")
        print(f"   traffic on one peer -> SSE event naming it                         {stats(delays)}")
        if first:
            print(f"   first event after connecting (all {args.peers:,} peers): {first[0][1] / 1e6:.2f} MB")
        if sizes:
            print(
                f"   update event size (changed peers only): median {statistics.median(sizes) / 1e3:.1f} kB"
            )
        print(
            f"   expected: uniform over the period ({args.period} s) plus one poll; median ~ period/2 + poll"
        )


if __name__ == "__main__":
    main()
