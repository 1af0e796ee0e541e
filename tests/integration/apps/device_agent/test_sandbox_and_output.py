"""The sandbox (bubblewrap) keeps exec off the network and from writing outside the
allowed paths; shell metacharacters are never interpreted; a 10 MB output is
truncated with a note and the agent stays up; two agents at once keep independent
chains."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest

from meshagents.apps.device_agent.capabilities.base import Context
from meshagents.apps.device_agent.pipeline import Pipeline
from tests.testbed.agent_rig import make_rig
from tests.testbed.agent_world import MakeWorld
from tests.testbed.host import require_binary, require_root

pytestmark = pytest.mark.integration

SANDBOX = Context(sandbox=True)


def test_sandbox_no_network_and_no_writes_outside(tmp_path: Path) -> None:
    require_root()
    require_binary("bwrap")
    rig = make_rig(tmp_path / "a")
    pipe = Pipeline(rig.config)
    outside = tmp_path / "outside"
    outside.mkdir()
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    try:
        probe = (
            "import socket\n"
            "s = socket.socket()\n"
            "s.settimeout(2)\n"
            "try:\n"
            f"    s.connect(('127.0.0.1', {port})); print('CONNECTED')\n"
            "except OSError as e:\n"
            "    print('REFUSED', e.errno)\n"
            "print(sorted(n for _, n in socket.if_nameindex()))\n"
        )
        out = pipe.process(
            rig.content("shell.exec.python3", {"argv": ["python3", "-c", probe]}), None, SANDBOX
        )
        assert out.status == "ok", out
        assert "REFUSED" in out.output and "CONNECTED" not in out.output
        assert "['lo']" in out.output  # only its own loopback: no route anywhere
        assert "(bwrap)" in out.reason

        script = (
            f"echo in > {rig.writable}/inside; echo out > {outside}/escaped; echo etc > /etc/meshagents-x"
        )
        out = pipe.process(rig.content("shell.exec.sh", {"argv": ["sh", "-c", script]}), None, SANDBOX)
        assert out.status == "ok"
        assert (rig.writable / "inside").read_text() == "in\n"
        assert not (outside / "escaped").exists()
        assert not Path("/etc/meshagents-x").exists()
        assert "Directory nonexistent" in out.output  # the outside dir is not even visible
        assert pipe.audit.verify().ok
    finally:
        listener.close()
        pipe.close()


async def test_metacharacters_big_output_and_two_agents(make_world: MakeWorld, tmp_path: Path) -> None:
    require_root()
    require_binary("bwrap")
    world = await make_world()
    (a, rig_a), (b, rig_b) = await asyncio.gather(
        world.add_agent(tmp_path / "a"), world.add_agent(tmp_path / "b")
    )

    words = ["a;b", "$(id)", "`id`", "x\ny", "&&", "|", ">", "*"]
    meta = rig_a.content("shell.exec.echo", {"argv": ["echo", *words]})
    big = rig_a.content("shell.exec.head", {"argv": ["head", "-c", "10000000", "/dev/zero"]})
    on_b = rig_b.content("shell.exec.ls", {"argv": ["ls", str(rig_b.files)]})
    cross = rig_a.content("shell.exec.ls", {"argv": ["ls", str(rig_a.files)]})
    cross["envelope"]["device_id"] = rig_b.device_id  # a's envelope sent to b: refused by b

    await world.send(rig_a, meta)
    await world.send(rig_a, big)
    await world.send(rig_b, on_b)
    await world.send(rig_b, cross)
    res, _ = await world.result(rig_a, meta["envelope"]["request_id"])
    assert res.content["output"] == " ".join(words) + "\n"
    res, note = await world.result(rig_a, big["envelope"]["request_id"])
    assert res.content["status"] == "ok" and res.content["truncated"] is True
    assert "of 10000000 bytes shown" in res.content["output"] or "truncated" in res.content["output"]
    assert len(res.content["output"]) < 70_000 and "(output truncated)" in (note.body or "")
    res, _ = await world.result(rig_b, on_b["envelope"]["request_id"])
    assert res.content["status"] == "ok" and "hello.txt" in res.content["output"]
    res, _ = await world.result(rig_b, cross["envelope"]["request_id"])
    assert res.content["status"] == "rejected_signature"  # b's manifest lists another controller

    # the agent is still up after the big output
    again = rig_a.content("shell.exec.echo", {"argv": ["echo", "still here"]})
    await world.send(rig_a, again)
    res, _ = await world.result(rig_a, again["envelope"]["request_id"])
    assert res.content["output"] == "still here\n"

    chain_a, chain_b = a.pipeline.audit, b.pipeline.audit
    assert chain_a.path != chain_b.path
    assert chain_a.verify().ok and chain_b.verify().ok
    ids_a = {e.request_id for e in chain_a.entries()}
    ids_b = {e.request_id for e in chain_b.entries()}
    assert ids_a == {
        meta["envelope"]["request_id"],
        big["envelope"]["request_id"],
        again["envelope"]["request_id"],
    }
    assert ids_b == {on_b["envelope"]["request_id"], cross["envelope"]["request_id"]}
    assert a.state == "ok" and b.state == "ok"


async def test_an_output_of_html_escapes_still_fits_one_answer(make_world: MakeWorld, tmp_path: Path) -> None:
    """The answer carries its result (bus.RESULT_KEY) beside the text, whose HTML copy of an
    output of ``&`` is five times as long: the result's output gives way, the text stays whole."""
    require_root()
    require_binary("bwrap")
    world = await make_world()
    _, rig = await world.add_agent(tmp_path / "a")
    env = rig.content("shell.exec.python3", {"argv": ["python3", "-c", "print('&' * 7500)"]})
    await world.send(rig, env)
    res, note = await world.result(rig, env["envelope"]["request_id"])
    assert res.content["status"] == "ok" and res.content["truncated"] is True
    assert len(res.content["output"]) < 1000
    assert "&" * 7500 in (note.body or "") and "(output not sent" not in (note.body or "")
