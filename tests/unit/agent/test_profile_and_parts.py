"""Pure parts: the capability offer (camera only where there is one), the config
loader, the bubblewrap command line, reply contents, sensors from a fake /sys."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from apps.device_agent import sandbox
from apps.device_agent.capabilities import sensors
from apps.device_agent.config import from_dict
from apps.device_agent.pipeline import Outcome
from apps.device_agent.profile import capabilities_for
from apps.device_agent.replies import json_cut, notice, result_content
from meshagents.errors import FnError
from meshagents.trust.models import Capability

pytestmark = pytest.mark.unit


def test_offer_camera_only_where_present() -> None:
    names = [c["name"] for c in capabilities_for("default", home="/home/op", camera_available=False)]
    assert "camera.snapshot" not in names and "fs.write" in names and "system.info" in names
    with_cam = [c["name"] for c in capabilities_for("default", home="/home/op", camera_available=True)]
    assert "camera.snapshot" in with_cam
    for entry in capabilities_for("docker", home="/home/op", camera_available=False):
        Capability.model_validate(entry)  # every entry is a valid manifest capability
    fs_write = next(c for c in capabilities_for("default", camera_available=False) if c["name"] == "fs.write")
    assert fs_write["requires_approval"] is True
    with pytest.raises(FnError):
        capabilities_for("everything")


def test_config_relative_paths_and_errors(tmp_path: Path) -> None:
    data = {
        "device_id": "d",
        "device_name": "d",
        "manifest_path": "m.json",
        "operator_key": "k",
        "homeserver": "http://h",
        "matrix_user": "@d:h",
        "matrix_password": "p",
        "device_room": "!r:h",
        "approvals_room": "#a:h",
    }
    cfg = from_dict(data, tmp_path)
    assert cfg.manifest_path == tmp_path / "m.json" and cfg.audit_path == tmp_path / "audit.sqlite"
    assert "matrix_password" not in repr(cfg)  # the password never reaches a log line
    for bad in ({"skew_s": -1}, {"sandbox": "yes"}, {"bot_users": "x"}, {"device_id": ""}):
        with pytest.raises(FnError) as err:
            from_dict({**data, **bad}, tmp_path)
        assert err.value.code == "agent_config_invalid"


def test_bwrap_command_line(tmp_path: Path) -> None:
    plan = sandbox.SandboxPlan(
        argv=["/bin/ls", "-l"], cwd=str(tmp_path), writable=(str(tmp_path), "/nonexistent")
    )
    cmd = sandbox.wrap(plan, "/usr/bin/bwrap")
    assert cmd[:6] == ["/usr/bin/bwrap", "--unshare-user", "--uid", "65534", "--gid", "65534"]
    assert cmd[1:4] != ["--ro-bind", "/", "/"] and "/" not in cmd[cmd.index("--proc") :][:-3]
    assert ["--bind", str(tmp_path), str(tmp_path)] == cmd[cmd.index("--bind") : cmd.index("--bind") + 3]
    assert "/nonexistent" not in cmd
    for flag in ("--unshare-net", "--unshare-pid", "--die-with-parent", "--new-session", "--cap-drop"):
        assert flag in cmd
    assert cmd[-3:] == ["--", "/bin/ls", "-l"]
    net = sandbox.wrap(sandbox.SandboxPlan(argv=["/bin/true"], network=True), "/usr/bin/bwrap")
    assert "--unshare-net" not in net
    assert sandbox.wrap(plan, None) == ["/bin/ls", "-l"]
    assert set(sandbox.scrubbed_env()) == {"PATH", "LANG", "LC_ALL", "HOME", "TERM"}


def test_replies_fit_one_event() -> None:
    out = Outcome(
        "ok",
        "exit 0",
        "r1",
        "d",
        "shell.exec.cat",
        0,
        "\x00" * 50000 + "\n[output truncated: 50000 of 9 bytes shown]",
        True,
        3,
        5,
        "$cmd",
    )
    content = result_content(out, 16000)
    assert len(json.dumps(content)) < 17000 and content["truncated"]
    assert content["output"].endswith("bytes shown]")
    body, html = notice(out, 16000)
    assert len(json.dumps(body)) + len(json.dumps(html)) < 40000
    assert json_cut("short", 100) == ("short", False)


def test_sensors_from_fake_sys(tmp_path: Path) -> None:
    zone = tmp_path / "thermal" / "thermal_zone0"
    zone.mkdir(parents=True)
    (zone / "temp").write_text("45500\n")
    (zone / "type").write_text("cpu\n")
    bat = tmp_path / "power_supply" / "BAT0"
    bat.mkdir(parents=True)
    (bat / "type").write_text("Battery\n")
    (bat / "capacity").write_text("81\n")
    data = sensors.collect(tmp_path)
    text = sensors.render(data)
    assert "cpu): 45.5 °C" in text and "capacity 81" in text
    empty = sensors.render(sensors.collect(tmp_path / "none"))
    assert "not available" in empty
