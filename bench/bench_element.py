"""Command round trip from Element's crypto stack beside the project's own client, same rig, same run.

    sudo .venv/bin/python bench/bench_element.py [--n 20]

One rig (one device, no Docker). A brand-new matrix-js-sdk session (Rust crypto,
"exclude insecure devices") verifies itself with the recovery key only; then the two
clients take turns sending ``!exec ls /tmp`` in #dev-home-wsl and wait for the device's
decrypted reply. Round trip: from just before the send call to the reply seen by that
client (for the js-sdk, timed in Python across the JSON-lines pipe: a few ms more).
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from meshagents.testbed import benchcli
from meshagents.testbed.benchkit import pct
from meshagents.testbed.rig import Rig
from tests.element.driver import ElementClient

HOME = "home-wsl"
CMD = "!exec ls /tmp"


async def run(rig: Rig, n: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"element": [], "nio": []}
    dev_user = rig.devices[HOME].matrix_user
    op = rig.operator_client("bench-element")
    await op.start()
    try:
        async with ElementClient.spawn(rig.workdir / "element-bench.log") as el:
            await el.login(rig.homeserver_url, rig.operator_user, rig.operator_password)
            await el.verify(rig.recovery_key)
            room = await el.join(rig.rooms[HOME])
            for i in range(n + 2):  # two warm-up rounds each, not counted
                t0 = time.perf_counter()
                sent = await el.send(room, CMD)
                await el.wait_event(
                    {"room_id": room, "in_reply_to": sent["event_id"], "sender": dev_user}, timeout=60
                )
                t_el = time.perf_counter() - t0
                reply = await op.command(HOME, CMD, timeout=60)
                if i >= 2:
                    out["element"].append(t_el * 1000)
                    out["nio"].append(reply.seconds * 1000)
    finally:
        await op.stop()
    return out


def main() -> int:
    args = benchcli.options(n=(int, 20))
    with Rig.up(devices=(HOME,), docker=False) as rig:
        res = asyncio.run(run(rig, args.n))
    for name, label in (("element", "matrix-js-sdk 36.2.0 + Rust crypto (Element's stack)"),
                        ("nio", "the project's operator client (nio)")):  # fmt: skip
        xs = res[name]
        print(f"{label}: n={len(xs)} p50 {pct(xs, 50):.0f} ms  p95 {pct(xs, 95):.0f} ms  "
              f"mean {statistics.mean(xs):.0f} ms")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
