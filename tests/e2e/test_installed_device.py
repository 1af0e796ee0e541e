"""A device that runs only the built wheel: it enrolls on the rig and answers a command.

The wheel is built, installed with ``[agent]`` into a venv under /var/tmp (Debian's python3),
and the rig's device runs ``meshagents/pipelines/enroll_device`` and the agent from that venv,
each in a mount namespace where the checkout is an empty tmpfs. Its own rig (one device, no
Docker), so nothing else of the suite runs from the installed copy.
"""

from __future__ import annotations

import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from meshagents.testbed.rig import Rig
from tests.conftest import require_binary
from tests.e2e.conftest import require_rig_tools
from tests.testbed.wheel import ROOT, build_wheel, install_venv

pytestmark = pytest.mark.e2e

DEVICE = "inst-dev"


@pytest.fixture(scope="module")
def irig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Rig, Path]]:
    require_rig_tools()
    require_binary("unshare")
    target = Path("/var/tmp") / f"pkg-e2e-{secrets.token_hex(4)}"
    try:
        venv = install_venv(build_wheel(tmp_path_factory.mktemp("dist")), target, extra="agent")
        with Rig.up(devices=(DEVICE,), docker=False, device_venv=venv) as running:
            yield running, venv
    finally:
        shutil.rmtree(target, ignore_errors=True)


@pytest.mark.timeout(900)
async def test_a_device_installed_from_the_wheel_enrolls_and_answers(irig: tuple[Rig, Path]) -> None:
    rig, venv = irig
    agent = rig.agent(DEVICE)
    assert agent.alive(), agent.log.read_text()[-2000:]
    # it runs the venv's code with the checkout out of sight
    exe = Path(f"/proc/{agent.proc.pid}/exe")
    children = Path(f"/proc/{agent.proc.pid}/task/{agent.proc.pid}/children").read_text().split()
    pids = [agent.proc.pid, *map(int, children)]
    cmdlines = [Path(f"/proc/{p}/cmdline").read_bytes().split(b"\0") for p in pids]
    assert any(str(venv / "bin/python").encode() in c for c in cmdlines), (exe, cmdlines)
    mounts = "".join(Path(f"/proc/{p}/mountinfo").read_text() for p in pids)
    assert f" {ROOT} " in mounts and "meshagents-hidden" in mounts
    assert rig.devices[DEVICE].address.startswith("10.42.0.")

    target = Path(f"/tmp/pkg-installed-{secrets.token_hex(3)}")
    target.mkdir()
    (target / "from-the-wheel.txt").write_text("hi\n")
    op = rig.operator_client(f"inst-{secrets.token_hex(2)}")
    await op.start()
    try:
        reply = await op.command(DEVICE, f"!exec ls {target}", timeout=90)
    finally:
        await op.stop()
        shutil.rmtree(target, ignore_errors=True)
    assert reply.sender == rig.devices[DEVICE].matrix_user, reply
    assert "from-the-wheel.txt" in reply.body and reply.body.split("\n", 1)[0].endswith("]: ok"), reply.body
