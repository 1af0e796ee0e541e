"""The bot's round trips on a real Synapse, against a plain echo in the same run.

    .venv/bin/python bench/bench_bot.py [--n 30]

Starts one embedded Synapse on a free loopback port and a private FN_STATE_DIR (temp
dirs, removed after), then, interleaved so all see the same load, from an operator
client (our Matrix client base, cross-signed) in encrypted rooms:

- baseline: a text to an echo client on the same base that answers every verified
  message with a notice (what any Matrix round trip costs here);
- refusal: ``!exec rm /tmp/x`` until the bot's refusal notice is decrypted
  (sender check, parse, manifest pre-check, dispatch row, notice + alert);
- envelope: ``!exec ls /tmp`` until the signed envelope event is decrypted
  (also the trust core's decide() and envelope_sign through meshagents.runtime.api.call);
- result: the same until the bot has recorded the test device's ``ok`` (the device
  verifies the envelope with the trust core and answers with a result event).

The first round of each kind is left out (session set-up). Prints p50 / p95 / mean.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from nacl.signing import SigningKey

from meshagents.apps.agents_and_robots.directory import FileDirectory, LocalHub
from meshagents.apps.agents_and_robots.shell import BotShell, ShellConfig
from meshagents.bus import ENVELOPE_EVENT
from meshagents.matrix.client import ClientConfig, Incoming, MatrixClient
from meshagents.matrix.homeserver import EmbeddedSynapse
from meshagents.matrix.rooms import power_levels
from meshagents.testbed import benchcli
from meshagents.testbed.benchkit import free_port, pct
from meshagents.trust import manifest as trust_manifest
from meshagents.trust.keystore import CONTROLLER_KEY, init_signing_key
from meshagents.trust.noncestore import NonceStore
from meshagents.trust.signing import public_b64
from tests.testbed.bot_world import CAPABILITIES, TestDevice, sign_manifest

FAST: dict[str, Any] = {"backoff_max": 1.0, "sync_timeout_ms": 3_000}


def replies_to(ev: Incoming, event_id: str) -> bool:
    rel = ev.content.get("m.relates_to")
    return isinstance(rel, dict) and (rel.get("m.in_reply_to") or {}).get("event_id") == event_id


def reply_from(sender: str, event_id: str, ev: Incoming) -> bool:
    return ev.sender == sender and replies_to(ev, event_id)


def envelope_for(event_id: str, ev: Incoming) -> bool:
    return ev.type == ENVELOPE_EVENT and ev.content.get("reply_to") == event_id


class Seen:
    """What the operator's client decrypted, with the time it arrived."""

    def __init__(self) -> None:
        self.events: list[tuple[float, Incoming]] = []
        self.changed = asyncio.Event()

    async def add(self, ev: Incoming) -> None:
        self.events.append((time.perf_counter(), ev))
        self.changed.set()

    async def first(self, match: Callable[[Incoming], bool], timeout: float = 30.0) -> float:
        deadline = time.perf_counter() + timeout
        while True:
            for at, ev in self.events:
                if match(ev):
                    return at
            if time.perf_counter() > deadline:
                raise TimeoutError("no matching event")
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), 0.5)


async def run(n: int, root: Path) -> dict[str, list[float]]:
    hs = EmbeddedSynapse(root / "hs", port=free_port())
    hs.write_config()
    hs.start()
    clients: list[MatrixClient] = []
    shell: BotShell | None = None
    try:
        tag = secrets.token_hex(3)
        op_user = hs.register(f"op-{tag}", "pw")
        bot_user = hs.register(f"bot-{tag}", "pw")
        dev_user = hs.register(f"dev-{tag}", "pw")
        echo_user = hs.register(f"echo-{tag}", "pw")
        name = f"bench-{tag}"
        controller, _ = init_signing_key(CONTROLLER_KEY)
        operator_key = SigningKey.generate()
        manifests = root / "manifests"
        manifests.mkdir()
        signed = sign_manifest(operator_key, name=name, matrix_user=dev_user, approvers=[op_user],
                               controller=public_b64(controller), capabilities=CAPABILITIES)
        (manifests / f"{name}.json").write_text(json.dumps(signed))

        def cfg(user: str, store: str, **kw: Any) -> ClientConfig:
            return ClientConfig(hs.url, user, "pw", root / store, **{**FAST, **kw})

        op = MatrixClient(cfg(op_user, "op", accept_invites_from=(bot_user,)))
        dev = MatrixClient(cfg(dev_user, "dev", operators=(op_user,),
                               accept_invites_from=(bot_user, op_user)))
        echo = MatrixClient(cfg(echo_user, "echo", operators=(op_user,)))
        clients += [op, dev, echo]
        seen = Seen()
        op.on_message(seen.add)
        op.on_custom_event(ENVELOPE_EVENT, seen.add)

        async def on_echo(ev: Incoming) -> None:
            if ev.verified:
                await echo.send_notice(ev.room_id, f"pong {ev.body}", reply_to=ev.event_id)

        echo.on_message(on_echo)
        await asyncio.gather(op.start(), dev.start(), echo.start())
        room = await op.create_room(alias=f"dev-{name}", invite=[bot_user, dev_user],
                                    power_levels=power_levels([op_user], bot_user, dev_user))
        echo_room = await op.create_room(invite=[echo_user])
        shell = BotShell(
            ShellConfig(client=cfg(bot_user, "bot"), server_name=hs.server_name, operators=(op_user,),
                        approvals_alias=f"operator-approvals-{tag}", control_port=0,
                        store_path=root / "operations.db"),
            directory=FileDirectory(manifests, operator_key=public_b64(operator_key)),
            hub=LocalHub(manifests))
        await shell.start()
        assert shell.approvals_room is not None
        manifest = trust_manifest.verify(signed, public_b64(operator_key))
        TestDevice(dev, manifest, NonceStore(root / "nonces.db"), shell.approvals_room, bot_user)
        for r, u in ((room, bot_user), (room, dev_user), (echo_room, echo_user)):
            await op.wait_for_member(r, u, timeout=30)
        await shell.client.wait_for_member(shell.approvals_room, dev_user, timeout=30)

        out: dict[str, list[float]] = {"baseline": [], "refusal": [], "envelope": [], "result": []}
        for i in range(n + 1):
            t0 = time.perf_counter()
            eid = await op.send_text(echo_room, f"ping {i}")
            at = await seen.first(partial(reply_from, echo_user, eid))
            base = (at - t0) * 1000

            t0 = time.perf_counter()
            eid = await op.send_text(room, "!exec rm /tmp/x")
            at = await seen.first(partial(reply_from, bot_user, eid))
            refusal = (at - t0) * 1000

            t0 = time.perf_counter()
            eid = await op.send_text(room, "!exec ls /tmp")
            at = await seen.first(partial(envelope_for, eid))
            env = (at - t0) * 1000
            sent = [e for _, e in seen.events if envelope_for(eid, e)]
            request_id = sent[0].content["envelope"]["request_id"]
            while True:
                row = shell.store.get(request_id)
                if row is not None and row.status == "ok":
                    break
                await asyncio.sleep(0.005)
            result = (time.perf_counter() - t0) * 1000
            if i > 0:
                for k, v in (("baseline", base), ("refusal", refusal), ("envelope", env), ("result", result)):
                    out[k].append(v)
        return out
    finally:
        if shell is not None:
            await shell.stop()
        for c in clients:
            await c.stop()
        hs.stop()


def main() -> None:
    ns = benchcli.options(n=(int, 30))
    root = Path(tempfile.mkdtemp(prefix="bench-bot-"))
    os.environ["FN_STATE_DIR"] = str(root / "state")
    try:
        figures = asyncio.run(run(ns.n, root))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"load average: {os.getloadavg()[0]:.1f}; n={ns.n} per kind (first round left out)")
    print(f"{'what':<34} {'p50':>9} {'p95':>9} {'mean':>9}")
    labels = {"baseline": "echo round trip (baseline)", "refusal": "!exec rm -> refusal notice",
              "envelope": "!exec ls -> signed envelope", "result": "!exec ls -> device result recorded"}
    for k, label in labels.items():
        v = figures[k]
        print(f"{label:<34} {pct(v, 50):>7.1f}ms {pct(v, 95):>7.1f}ms {statistics.mean(v):>7.1f}ms")


if __name__ == "__main__":
    main()
