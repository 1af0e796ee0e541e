"""The rig's pure parts: per-run names, the root-namespace guard, rendered configs."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meshagents.errors import FnError
from meshagents.testbed.rig import config as cfg
from meshagents.testbed.rig.forward import parse_listen
from meshagents.testbed.rig.install import missing_packages
from meshagents.testbed.rig.names import IFNAMSIZ, RunNames, check_device_name
from meshagents.testbed.rig.netns import private_routes

pytestmark = pytest.mark.unit


@given(st.text(alphabet="0123456789abcdef", min_size=6, max_size=6), st.integers(1, 250))
def test_names_fit_and_carry_the_suffix(suffix: str, index: int) -> None:
    names = RunNames(suffix)
    dev = names.device(index)
    for ifname in (names.hub_wg, names.bridge, dev.wg, dev.veth_hub, dev.veth_dev):
        assert len(ifname) <= IFNAMSIZ
        assert suffix in ifname
    assert suffix in names.hub_ns and suffix in dev.ns and suffix in names.docker_ns
    assert dev.underlay.startswith("198.19.0.")  # 198.18.0.0/15 only
    assert names.docker_cgroup.startswith("/")  # absolute, or it nests under the caller's


def test_two_runs_never_share_a_name() -> None:
    a, b = RunNames.new(), RunNames.new()
    assert a.suffix != b.suffix or a == b
    assert {a.hub_ns, a.hub_wg, a.device(1).wg}.isdisjoint({b.hub_ns, b.hub_wg, b.device(1).wg}) or a == b


@pytest.mark.parametrize("bad", ["ABCDEF", "12345", "1234567", "ghijkl"])
def test_bad_suffix_is_refused(bad: str) -> None:
    with pytest.raises(FnError) as err:
        RunNames(bad)
    assert err.value.code == "bad_suffix"


def test_device_names() -> None:
    assert check_device_name("home-wsl") == "home-wsl"
    for bad in ("Home", "-x", "a b", "x" * 40, ""):
        with pytest.raises(FnError):
            check_device_name(bad)
    with pytest.raises(FnError):
        RunNames("a1b2c3").device(0)


def test_private_routes_guard() -> None:
    text = "\n".join(
        [
            "default via 192.0.2.1 dev eth0",
            "192.0.2.0/24 dev eth0 proto kernel scope link src 192.0.2.2",
            "198.18.4.0/30 dev mx0 proto kernel",
            "10.42.0.0/24 dev wg0 scope link",
            "172.17.0.0/16 dev docker0",
            "192.168.1.0/24 dev br0",
            "172.32.0.0/16 dev x",
        ]
    )
    assert private_routes(text) == {"10.42.0.0/24", "172.17.0.0/16", "192.168.1.0/24"}
    assert private_routes("") == set()


def test_hub_toml_parses_and_keeps_services_off_the_root_namespace() -> None:
    text = cfg.hub_toml(
        cfg.HubSettings(
            interface="rwa1b2c3h", config_dir="/tmp/x/hub-wg", netns="rha1b2c3",
            approvers=("@operator:hub.mesh",), profiles_dir="/tmp/x/profiles", state_dir="/tmp/x/s",
        )
    )  # fmt: skip
    data = tomllib.loads(text)
    assert data["netns"] == "rha1b2c3"
    assert data["operator_hosts"] == ["10.42.0.1", "127.0.0.1"]
    assert data["public_host"].startswith("198.19.")
    assert data["matrix"]["homeserver_url"] == "http://10.42.0.1:8008"
    assert data["approvers"] == ["@operator:hub.mesh"]


def test_matrix_and_bot_settings_parse() -> None:
    m = tomllib.loads(
        cfg.matrix_settings_toml(
            operators=['@op"x:hs'], bot="@bot:hs", secret_file="/s/secret", server_name="hs"
        )
    )
    assert m["operators"] == ['@op"x:hs'] and m["actor"] == "bot"
    b = tomllib.loads(cfg.bot_toml(manifests_dir="/m"))
    assert b["hub_url"] == "http://127.0.0.1:8000" and b["manifests_dir"] == "/m"
    assert b["poll_s"] <= 2.0  # the bot refuses slower polls


def test_agent_config_is_what_the_agent_loads(tmp_path: Path) -> None:
    from meshagents.apps.device_agent.config import from_dict

    conf = cfg.agent_config(
        device_name="home-wsl", device_id="home-wsl", manifest_path="/x/manifest.json", operator_key="k",
        matrix_user="@dev-home-wsl:hub.mesh", matrix_password="pw", bot_user="@bot:hub.mesh",
    )  # fmt: skip
    loaded = from_dict(json.loads(json.dumps(conf)), tmp_path)
    assert loaded.device_room == "#dev-home-wsl:hub.mesh"
    assert loaded.approvals_room == "#operator-approvals:hub.mesh"
    assert loaded.hub_url == "http://10.42.0.1:8000"
    assert loaded.bot_users == ("@bot:hub.mesh",)


def test_demo_profile_adds_fs_write_with_approval_and_one_path_per_program() -> None:
    workstation: dict[str, Any] = {
        "ttl_s": 100,
        "capabilities": [
            {"name": "shell.exec.ls", "executables": ["/bin/ls", "/usr/bin/ls"]},
            {"name": "system.reboot", "executables": ["/usr/sbin/reboot", "/sbin/reboot"]},
            {"name": "fs.list", "path_prefixes": ["/tmp"]},
        ],
    }
    prof = cfg.demo_profile(workstation)
    by = {c["name"]: c for c in prof["capabilities"]}
    assert by["shell.exec.ls"]["executables"] == ["/usr/bin/ls"]
    assert by["system.reboot"]["executables"] == ["/usr/sbin/reboot"]
    assert by["fs.write"]["requires_approval"] is True
    assert by["fs.write"]["texts"] == {"content": 65536, "file": 4096}
    assert prof["ttl_s"] == 100
    assert workstation["capabilities"][0]["executables"] == ["/bin/ls", "/usr/bin/ls"]  # not mutated


def test_demo_profile_of_the_shipped_workstation_is_valid() -> None:
    from meshagents.state import project_root
    from meshagents.trust.models import Capability

    shipped = json.loads((project_root() / "meshagents/apps/wg_hub/profiles/workstation.json").read_text())
    for cap in cfg.demo_profile(shipped)["capabilities"]:
        Capability.model_validate(cap)


def test_connection_info_names_the_rooms() -> None:
    conn = cfg.connection_info(
        homeserver="http://127.0.0.1:1", server_name="hub.mesh", operator_user="@operator:hub.mesh",
        operator_password="pw", cross_signing_path="/x", bot_user="@bot:hub.mesh",
        devices=["home-wsl", "pc-aurgi"], dashboard="d", hub_api="h", bot_api="b", api_token="t",
        store_root="/s",
    )  # fmt: skip
    assert conn["rooms"] == {
        "home-wsl": "#dev-home-wsl:hub.mesh",
        "pc-aurgi": "#dev-pc-aurgi:hub.mesh",
        "approvals": "#operator-approvals:hub.mesh",
    }


def test_parse_listen() -> None:
    assert parse_listen("5=10.42.0.1:8008") == (5, "10.42.0.1", 8008)
    for bad in ("x=1.2.3.4:5", "5=1.2.3.4", "5:1.2.3.4:5", "5=:80"):
        with pytest.raises(ValueError):
            parse_listen(bad)


def test_missing_packages() -> None:
    assert missing_packages(which=lambda _n: "/usr/bin/x", exists=lambda _p: True) == []
    missing = missing_packages(which=lambda n: None if n == "wireguard-go" else "/x", exists=lambda _p: False)
    assert missing == ["wireguard-go", "busybox-static"]
