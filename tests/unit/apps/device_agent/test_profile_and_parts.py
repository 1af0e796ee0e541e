"""Pure parts: the capability offer (camera only where there is one), the config
loader, the bubblewrap command line, reply contents, sensors from a fake /sys."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from meshagents.apps.device_agent import sandbox
from meshagents.apps.device_agent.capabilities import sensors
from meshagents.apps.device_agent.config import from_dict
from meshagents.apps.device_agent.pipeline import Outcome
from meshagents.apps.device_agent.profile import capabilities_for
from meshagents.apps.device_agent.replies import json_cut, notice, result_content
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


def test_config_relative_paths_and_errors(tmp_path: Path, state_dir: Path) -> None:
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
    assert cfg.manifest_path == tmp_path / "m.json"
    assert cfg.audit_path == state_dir / "audit" / "d.sqlite"  # the one place the verifier reads
    assert from_dict({**data, "audit_path": "a.sqlite"}, tmp_path).audit_path == tmp_path / "a.sqlite"
    assert "matrix_password" not in repr(cfg)  # the password never reaches a log line
    bads = (
        {"skew_s": -1},
        {"sandbox": "yes"},
        {"bot_users": "x"},
        {"device_id": ""},
        {"device_id": "../x"},
        {"checkpoint_every": -1},
        {"checkpoint_interval_s": 0},
    )
    for bad in bads:
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


def _offer_manifest(caps: list[dict[str, object]]) -> object:
    from nacl.signing import SigningKey

    from meshagents.trust import manifest as trust_manifest
    from meshagents.trust.signing import public_b64

    key = SigningKey.generate()
    pub = public_b64(key)
    body = {
        "device_id": "d1", "device_name": "d1", "device_key": pub, "wg_public_key": pub,
        "mesh_address": "10.42.0.10", "matrix_user": "@d:h", "approvers": ["@op:h"],
        "controllers": [pub], "capabilities": caps, "serial": 1, "issued_at": 1, "expires_at": 2**40,
    }  # fmt: skip
    return trust_manifest.sign(body, key)


def test_offers_are_honest_about_programs_that_change_the_system() -> None:
    from meshagents.apps.device_agent.profile import PROGRAMS
    from meshagents.trust.manifest import decide

    caps = [
        {"name": f"shell.exec.{p}", "executables": [f"/usr/bin/{p}"], **c}
        for p, c in PROGRAMS.items()
        if p != "ls"
    ]
    m = _offer_manifest(caps)

    def ok(*argv: str) -> bool:
        return decide(m, f"shell.exec.{argv[0]}", {"argv": list(argv)}, resolve=False).allowed  # type: ignore[arg-type]

    assert ok("systemctl", "status", "ssh") and ok("systemctl", "--no-pager", "list-units")
    for argv in (
        ("systemctl", "poweroff"),
        ("systemctl", "start", "ssh"),
        ("systemctl", "--type", "status", "stop"),
        ("systemctl", "-H", "host", "status"),
        ("journalctl", "--rotate"),
        ("journalctl", "--vacuum-size=1M"),
        ("journalctl", "--vacuum-time", "1s"),
        ("journalctl", "--flush"),
        ("journalctl", "--directory", "/root"),
        ("journalctl", "--file=/etc/shadow"),
        ("df", "--output=source", "-x"),
    ):
        assert not ok(*argv), argv
    assert ok("journalctl", "-u", "ssh", "-n", "50", "--no-pager") and ok("journalctl", "-n50")
    ip = next(c for c in caps if c["name"] == "shell.exec.ip")
    assert ip["requires_approval"] is True
    assert "shell.exec.ps" not in {c["name"] for c in capabilities_for("default", camera_available=False)}


def test_offers_never_reach_the_agent_state(tmp_path: Path) -> None:
    home = tmp_path / "home" / "op"
    (home / "Documents").mkdir(parents=True)
    state = home / ".local" / "state" / "meshagents"
    caps = capabilities_for("default", home=str(home), camera_available=False, protected=(str(state),))
    prefixes = [p for c in caps for p in c.get("path_prefixes", [])]
    assert str(home) not in prefixes and str(home / "Documents") in prefixes
    fs_read = next(c for c in caps if c["name"] == "fs.read")
    assert fs_read["path_prefixes"] == [str(home / "Documents")]
    root_caps = capabilities_for(
        "default", home="/root", camera_available=False, protected=("/var/lib/meshagents",)
    )
    assert next(c for c in root_caps if c["name"] == "fs.read")["path_prefixes"] == ["/root"]


def test_config_sandbox_weak_is_explicit(tmp_path: Path) -> None:
    data = {
        "device_id": "d", "device_name": "d", "manifest_path": "m.json", "operator_key": "k",
        "homeserver": "http://h", "matrix_user": "@d:h", "matrix_password": "p",
        "device_room": "!r:h", "approvals_room": "#a:h",
    }  # fmt: skip
    assert from_dict(data, tmp_path).sandbox_mode == "bwrap"
    assert from_dict({**data, "sandbox": "weak"}, tmp_path).sandbox_mode == "weak"
    cfg = from_dict(data, tmp_path)
    protected = cfg.protected_paths()
    assert str(tmp_path) in protected and str(cfg.audit_path) in protected
    assert str(cfg.audit_path).removesuffix(".sqlite") + ".checkpoints.jsonl" in protected


def test_the_agent_refuses_to_start_without_its_sandbox(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from meshagents.apps.device_agent import agent, sandbox

    data = {
        "device_id": "d", "device_name": "d", "manifest_path": "m.json", "operator_key": "k",
        "homeserver": "http://h", "matrix_user": "@d:h", "matrix_password": "p",
        "device_room": "!r:h", "approvals_room": "#a:h",
    }  # fmt: skip
    monkeypatch.setattr(sandbox, "probe", lambda: "bubblewrap (bwrap) is not installed")
    with pytest.raises(FnError) as err:
        agent.require_sandbox(from_dict(data, tmp_path))
    assert err.value.code == "sandbox_unavailable" and '"sandbox": "weak"' in err.value.message
    agent.require_sandbox(from_dict({**data, "sandbox": "weak"}, tmp_path))  # explicit: it runs
