"""The bot's push path against the real hub service: it follows ``/api/events`` (the
bot's own ``HubApi.events``), sees a revocation as an event, and after a hub restart
resumes with ``Last-Event-ID``, getting first what was published while it was away."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from meshagents.apps.agents_and_robots.directory import HubApi, HubEvent
from tests.integration.apps.wg_hub.test_enroll import enrolled
from tests.testbed.hub_rig import OPERATOR_PORT, HubRig, in_netns


def _run(rig: HubRig, coro: Any) -> Any:
    return in_netns(rig.hub_ns, asyncio.run, coro)


async def _until(api: HubApi, last: str | None, want: str, device: str, then: Any = None,
                 timeout: float = 30) -> tuple[list[HubEvent], float]:
    """Read events (from ``last``) until ``want`` for ``device``; ``then`` runs once connected.
    Returns the events read and the seconds from ``then`` finishing to ``want`` arriving."""
    got: list[HubEvent] = []
    done_at = 0.0

    async def read() -> None:
        nonlocal done_at
        started = False
        async for ev in api.events(last):
            got.append(ev)
            if not started and then is not None:  # connected (a first event came)
                started = True
                await asyncio.to_thread(then)
                done_at = time.perf_counter()
            if ev.type == want and ev.data.get("device_id") == device:
                return

    await asyncio.wait_for(read(), timeout)
    return got, time.perf_counter() - done_at if done_at else 0.0


def test_revocation_pushed_and_stream_resumed_after_a_restart(hub_rig: HubRig) -> None:
    url = f"http://127.0.0.1:{OPERATOR_PORT}"
    api = HubApi(url, hub_rig.api_token)
    dev, _ = enrolled(hub_rig)

    def revoke() -> None:
        r = httpx.post(f"{url}/api/peers/{dev.name}/revoke",
                       headers={"Authorization": f"Bearer {hub_rig.api_token}"}, timeout=15)
        assert r.status_code == 200, r.text

    # connected first (the periodic peer_stats arrives), then the revoke: it is pushed
    got, after_answer_s = _run(hub_rig, _until(api, None, "peer_revoked", dev.name, then=revoke))
    revoked = got[-1]
    assert revoked.type == "peer_revoked" and revoked.id
    print(f"peer_revoked event {after_answer_s * 1000:.1f} ms after the API answered")

    # the hub restarts; while nobody listens a device enrolls and is revoked
    hub_rig.stop()
    hub_rig.start()
    dev2, _ = enrolled(hub_rig)
    r = hub_rig.operator("POST", f"/api/peers/{dev2.name}/revoke")
    assert r.status_code == 200, r.text

    # resuming from the last id seen: what was missed comes first, in order, with larger ids
    missed, _ = _run(hub_rig, _until(api, revoked.id, "peer_revoked", dev2.name))
    journaled = [e for e in missed if e.type != "peer_stats"]
    assert [(e.type, e.data.get("device_id")) for e in journaled][:1] == [("peer_added", dev2.name)]
    assert journaled[-1].type == "peer_revoked" and journaled[-1].data["device_id"] == dev2.name
    assert all(int(e.id) > int(revoked.id) for e in missed if e.id)
    assert not any(e.type == "peer_revoked" and e.data.get("device_id") == dev.name for e in missed)
