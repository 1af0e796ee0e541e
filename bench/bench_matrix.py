"""Send-to-decrypted-reply round trip: two clients on our base vs two bare nio clients.

    .venv/bin/python bench/bench_matrix.py [--messages 100]

Starts one embedded Synapse on a free loopback port (temp dir, removed after), then in
the same run, for each pair: an "operator" sends an encrypted text into an encrypted
room, the "responder" decrypts it and replies with an encrypted notice, and the time
until the operator has decrypted that reply is recorded. The first message (session
setup) is reported apart and left out of p50/p95. Prints the figures.
"""

from __future__ import annotations

import asyncio
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import nio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from meshagents.matrix.client import ClientConfig, Incoming, MatrixClient
from meshagents.matrix.homeserver import EmbeddedSynapse
from meshagents.testbed import benchcli
from meshagents.testbed.benchkit import free_port, pct


class Pair:
    """Two clients in one encrypted room: ``roundtrip(i)`` times one ping -> decrypted pong."""

    def __init__(
        self,
        send: Callable[[str], Awaitable[None]],
        replies: asyncio.Queue[str],
        close: Callable[[], Awaitable[None]],
    ) -> None:
        self.send, self.replies, self.close = send, replies, close

    async def roundtrip(self, i: int) -> float:
        t0 = time.perf_counter()
        await self.send(f"ping {i}")
        while (await asyncio.wait_for(self.replies.get(), 30)) != f"pong ping {i}":
            pass
        return (time.perf_counter() - t0) * 1000


async def base_pair(hs: EmbeddedSynapse, root: Path, tag: str) -> Pair:
    op_id = hs.register(f"op-{tag}", "pw")
    bot_id = hs.register(f"bot-{tag}", "pw")
    op = MatrixClient(ClientConfig(hs.url, op_id, "pw", root / "op"))
    bot = MatrixClient(ClientConfig(hs.url, bot_id, "pw", root / "bot", operators=(op_id,)))
    replies: asyncio.Queue[str] = asyncio.Queue()

    async def on_op(ev: Incoming) -> None:
        if ev.decrypted and ev.body:
            await replies.put(ev.body)

    async def on_bot(ev: Incoming) -> None:
        if ev.verified:
            await bot.send_notice(ev.room_id, f"pong {ev.body}", reply_to=ev.event_id)

    op.on_message(on_op)
    bot.on_message(on_bot)
    await op.start()
    await bot.start()
    room = await op.create_room(invite=[bot_id])
    await op.wait_for_member(room, bot_id)

    async def send(body: str) -> None:
        await op.send_text(room, body)

    async def close() -> None:
        await op.stop()
        await bot.stop()

    return Pair(send, replies, close)


async def bare_pair(hs: EmbeddedSynapse, root: Path, tag: str) -> Pair:
    op_id = hs.register(f"nop-{tag}", "pw")
    bot_id = hs.register(f"nbot-{tag}", "pw")
    cfg = nio.AsyncClientConfig(store_sync_tokens=True, encryption_enabled=True)
    clients = []
    for uid, name in ((op_id, "nop"), (bot_id, "nbot")):
        (root / name).mkdir()
        c = nio.AsyncClient(hs.url, uid, store_path=str(root / name), config=cfg)
        await c.login("pw")
        await c.keys_upload()
        clients.append(c)
    op, bot = clients
    replies: asyncio.Queue[str] = asyncio.Queue()
    joined = asyncio.Event()

    async def on_op(room: nio.MatrixRoom, ev: nio.RoomMessageText) -> None:
        await replies.put(ev.body)

    async def on_bot(room: nio.MatrixRoom, ev: nio.RoomMessageText) -> None:
        if ev.sender == op_id:
            content = {
                "msgtype": "m.notice",
                "body": f"pong {ev.body}",
                "m.relates_to": {"m.in_reply_to": {"event_id": ev.event_id}},
            }
            await bot.room_send(room.room_id, "m.room.message", content, ignore_unverified_devices=True)

    async def on_invite(room: nio.MatrixRoom, ev: nio.InviteMemberEvent) -> None:
        if ev.state_key == bot_id:
            await bot.join(room.room_id)

    async def on_member(room: nio.MatrixRoom, ev: nio.RoomMemberEvent) -> None:
        if ev.state_key == bot_id and ev.membership == "join":
            joined.set()

    op.add_event_callback(on_op, nio.RoomMessageNotice)  # type: ignore[arg-type]
    op.add_event_callback(on_member, nio.RoomMemberEvent)  # type: ignore[arg-type]
    bot.add_event_callback(on_bot, nio.RoomMessageText)  # type: ignore[arg-type]
    bot.add_event_callback(on_invite, nio.InviteMemberEvent)  # type: ignore[arg-type]
    tasks = [asyncio.create_task(c.sync_forever(timeout=30000)) for c in clients]
    initial = [
        {"type": "m.room.encryption", "state_key": "", "content": {"algorithm": "m.megolm.v1.aes-sha2"}}
    ]
    resp = await op.room_create(invite=[bot_id], initial_state=initial)
    assert isinstance(resp, nio.RoomCreateResponse), resp
    room_id = resp.room_id
    await asyncio.wait_for(joined.wait(), 20)

    async def send(body: str) -> None:
        content = {"msgtype": "m.text", "body": body}
        await op.room_send(room_id, "m.room.message", content, ignore_unverified_devices=True)

    async def close() -> None:
        for t in tasks:
            t.cancel()
        for c in clients:
            await c.close()

    return Pair(send, replies, close)


def report(name: str, ms: list[float]) -> None:
    first, rest = ms[0], ms[1:]
    print(
        f"{name:<28} n={len(rest):>4}  p50={statistics.median(rest):7.1f} ms  p95={pct(rest, 95):7.1f} ms"
        f"  mean={statistics.fmean(rest):7.1f} ms  first={first:7.1f} ms"
    )


async def main(n: int) -> None:
    tag = secrets.token_hex(3)
    root = Path(tempfile.mkdtemp(prefix=f"bench-matrix-{tag}-"))
    hs = EmbeddedSynapse(root / "hs", port=free_port())
    try:
        t0 = time.perf_counter()
        hs.start()
        print(f"synapse ready in {time.perf_counter() - t0:.2f} s on {hs.url}")
        (root / "base").mkdir()
        (root / "bare").mkdir()
        pairs = {
            "bare nio (baseline)": await bare_pair(hs, root / "bare", tag),
            "meshagents client base": await base_pair(hs, root / "base", tag),
        }
        times: dict[str, list[float]] = {name: [] for name in pairs}
        try:
            # Interleaved, so both see the same load on a shared machine.
            for i in range(n + 1):
                for name, pair in pairs.items():
                    times[name].append(await pair.roundtrip(i))
        finally:
            for pair in pairs.values():
                await pair.close()
        print(f"send -> decrypted reply round trip, {n} messages each, same Synapse, interleaved:")
        for name, ms in times.items():
            report(name, ms)
        base, bare = times["meshagents client base"], times["bare nio (baseline)"]
        print(f"base / bare p50 ratio: {statistics.median(base[1:]) / statistics.median(bare[1:]):.2f}")
    finally:
        hs.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main(benchcli.options(__doc__.splitlines()[0], messages=(int, 100)).messages))
