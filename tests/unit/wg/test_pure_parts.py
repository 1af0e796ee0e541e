"""Firewall rules, install plans, client configs, drift comparison, names: pure pieces."""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path

import pytest

from meshagents.errors import FnError
from meshagents.wg.backend import check_ifname
from meshagents.wg.client import PLACEHOLDER, render_client
from meshagents.wg.config import InterfaceSection, PeerSection, WgQuickConfig, parse
from meshagents.wg.firewall import apply_script, render_rules, table_name
from meshagents.wg.gitdir import ConfigRepo
from meshagents.wg.hub import in_sync, live_differences, redact
from meshagents.wg.install import Platform, detect_platform, make_plan
from meshagents.wg.keys import b64_to_hex, check_key, hex_to_b64
from meshagents.wg.model import DeviceState, PeerState
from meshagents.wg.peers import check_name, default_name
from meshagents.wg.systemd import render_unit

pytestmark = pytest.mark.unit

PRIV = "yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk="
PUB = base64.b64encode(b"\x05" * 32).decode()


def test_rules_open_wireguard_and_fence_services() -> None:
    rules = render_rules(
        interface="wg0", subnet="10.42.0.0/24", listen_port=51820, service_ports=[8008, 8000]
    )
    assert "table inet meshagents_wg0 {" in rules
    assert "udp dport 51820 accept" in rules
    accept = 'iifname "wg0" ip saddr 10.42.0.0/24 tcp dport { 8000, 8008 } accept'
    drop = "tcp dport { 8000, 8008 } drop"
    assert accept in rules and drop in rules
    assert rules.index('iifname "lo" tcp dport { 8000, 8008 } accept') < rules.index(drop)
    assert rules.index(accept) < rules.index(drop), "mesh accept must come before the public drop"
    assert 'iifname "wg0" oifname "wg0" ip saddr 10.42.0.0/24 accept' in rules
    assert "policy accept" in rules  # never locks the operator out of ssh
    assert "tcp dport" not in render_rules(
        interface="wg0", subnet="10.42.0.0/24", listen_port=1, service_ports=[]
    )


def test_rules_apply_atomically() -> None:
    script = apply_script("wg-x.1", "RULES")
    assert table_name("wg-x.1") == "meshagents_wg_x_1"
    assert script.splitlines()[:2] == ["table inet meshagents_wg_x_1", "delete table inet meshagents_wg_x_1"]


def test_platform_detection() -> None:
    assert detect_platform('ID=debian\nVERSION_ID="12"\n', {}).manager == "apt"
    assert detect_platform("ID=raspbian\nID_LIKE=debian\n", {}).manager == "apt"
    assert detect_platform("ID=ubuntu\nID_LIKE=debian\n", {}).manager == "apt"
    assert detect_platform(None, {"PREFIX": "/data/data/com.termux/files/usr"}) == Platform("termux", "pkg")
    assert detect_platform("ID=fedora\n", {}).manager is None


def test_install_plans() -> None:
    deb = Platform("debian", "apt")
    plan = make_plan(deb, kernel_wireguard=False, installed=set(), hub=True)
    assert plan.packages == ("wireguard-tools", "wireguard-go", "nftables", "git")
    assert plan.commands[-1][:3] == ("apt-get", "install", "-y")
    assert make_plan(deb, kernel_wireguard=True, installed=set(), hub=False).packages == ("wireguard-tools",)
    done = make_plan(deb, False, {"wireguard-tools", "wireguard-go"}, hub=False)
    assert done.missing == () and done.commands == (), "idempotent: nothing to do when installed"
    assert make_plan(Platform("termux", "pkg"), False, set(), False).commands == (
        ("pkg", "install", "-y", "wireguard-tools"),
    )
    with pytest.raises(FnError) as exc:
        make_plan(Platform("fedora", None), False, set(), False)
    assert exc.value.code == "unsupported_platform" and "wireguard-tools" in exc.value.message


def test_client_config_shape() -> None:
    text = render_client(
        private_key=None,
        address="10.42.0.10",
        prefixlen=24,
        hub_public_key=PUB,
        endpoint="hub.example:51820",
        mesh_subnet="10.42.0.0/24",
        preshared_key=None,
    )
    cfg = parse(text)
    assert cfg.interface.private_key == PLACEHOLDER, "the hub never has the device's private key"
    assert cfg.interface.addresses == ("10.42.0.10/24",)
    (hub,) = cfg.peers
    assert hub.public_key == PUB and hub.endpoint == "hub.example:51820"
    assert hub.allowed_ips == ("10.42.0.0/24",) and hub.persistent_keepalive == 25
    unit = render_unit("wg0", Path("/etc/wireguard/wg0.conf"))
    assert (
        "ExecStart=/usr/bin/wg-quick up /etc/wireguard/wg0.conf" in unit
        and "WantedBy=multi-user.target" in unit
    )


def test_live_differences() -> None:
    from meshagents.wg.keys import public_from_private

    cfg = WgQuickConfig(
        interface=InterfaceSection(private_key=PRIV, listen_port=51820),
        peers=(PeerSection(PUB, ("10.42.0.10/32",)),),
    )
    same = DeviceState(public_from_private(PRIV), 51820, (PeerState(PUB, ("10.42.0.10/32",)),))
    assert in_sync(live_differences(cfg, same))
    other = base64.b64encode(b"\x06" * 32).decode()
    off = DeviceState(public_from_private(PRIV), 51821, (PeerState(other, ()),))
    d = live_differences(cfg, off)
    assert d == {"interface": ["listen_port"], "missing_live": [PUB], "extra_live": [other], "changed": []}
    changed = DeviceState(public_from_private(PRIV), 51820, (PeerState(PUB, ("10.42.0.99/32",)),))
    assert live_differences(cfg, changed)["changed"] == [PUB]


def test_redact_keeps_keys_out_of_diffs() -> None:
    diff = f"-PrivateKey = {PRIV}\n+PresharedKey={PRIV}\n AllowedIPs = 10.42.0.10/32\n"
    out = redact(diff)
    assert PRIV not in out and "AllowedIPs = 10.42.0.10/32" in out


def test_keys_and_names() -> None:
    assert hex_to_b64(b64_to_hex(PRIV)) == PRIV
    assert check_key(f"  {PRIV}\n") == PRIV
    for bad in ("nope", base64.b64encode(b"x" * 31).decode()):
        with pytest.raises(FnError) as exc:
            check_key(bad)
        assert exc.value.code == "invalid_key"
    assert check_name("home-wsl.1") == "home-wsl.1"
    for bad_name in ("", "-x", "a b", "x" * 64, "a/b"):
        with pytest.raises(FnError):
            check_name(bad_name)
    assert default_name(PUB).startswith("peer-")
    check_ifname("wg0")
    for bad_if in ("", "x" * 16, "a/b", "a b"):
        with pytest.raises(FnError):
            check_ifname(bad_if)


def test_config_repo_commits_and_sees_edits(tmp_path: Path) -> None:
    repo = ConfigRepo(tmp_path / "cfg")
    assert repo.ensure() is True
    assert repo.ensure() is False
    assert (tmp_path / "cfg" / ".git").stat().st_mode & 0o777 == 0o700
    assert repo.write("wg0.conf", "[Interface]\n") is True
    assert (tmp_path / "cfg" / "wg0.conf").stat().st_mode & 0o777 == 0o600
    first = repo.commit(["wg0.conf"], "one")
    assert first is not None and repo.head() == first
    assert repo.write("wg0.conf", "[Interface]\n") is False
    assert repo.commit(["wg0.conf"], "nothing") is None
    assert repo.uncommitted(["wg0.conf"]) == []
    (tmp_path / "cfg" / "wg0.conf").write_text("[Interface]\nMTU = 1\n")
    assert repo.uncommitted(["wg0.conf"]) == [" M wg0.conf"]
    assert "+MTU = 1" in repo.diff(["wg0.conf"])
    second = repo.commit(["wg0.conf"], "two")
    assert second not in (None, first)
    log = subprocess.run(
        ["git", "-C", str(tmp_path / "cfg"), "log", "--format=%s"], capture_output=True, text=True
    )
    assert log.stdout.split() == ["two", "one", "meshagents:", "ignore", "ledger", "and", "locks"]


def test_client_install_needs_the_device_key(tmp_path: Path) -> None:
    from meshagents.wg.client import install

    text = render_client(
        private_key=None,
        address="10.42.0.10",
        prefixlen=24,
        hub_public_key=PUB,
        endpoint="hub.example:51820",
        mesh_subnet="10.42.0.0/24",
        preshared_key=None,
    )
    with pytest.raises(FnError) as exc:
        install(config_text=text, interface="wgx0", config_dir=tmp_path, netns=None, private_key_file=None)
    assert exc.value.code == "private_key_missing"
    bad = tmp_path / "k"
    bad.write_text("not a key\n")
    with pytest.raises(FnError) as exc:
        install(config_text=text, interface="wgx0", config_dir=tmp_path, netns=None, private_key_file=bad)
    assert exc.value.code == "invalid_key"
    assert not (tmp_path / "wgx0.conf").exists(), "bad input: nothing written"
