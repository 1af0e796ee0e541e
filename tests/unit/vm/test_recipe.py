"""The VM recipe's pure parts: cache key, names, command lines."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from meshagents.testbed.vm.recipe import (
    GATEWAY,
    SEGMENT,
    VM_ADDRESS,
    NetPlan,
    Recipe,
    check_name,
    kernel_append,
    mac_address,
    overlay_argv,
    qemu_argv,
    recipe_sha,
    ssh_config_text,
)


def test_recipe_sha_ignores_package_order_but_not_content() -> None:
    r = Recipe()
    assert recipe_sha(r) == recipe_sha(replace(r, packages=tuple(reversed(r.packages))))
    assert recipe_sha(r) != recipe_sha(replace(r, packages=(*r.packages, "htop")))
    assert recipe_sha(r) != recipe_sha(replace(r, build_version=r.build_version + 1))
    assert len(recipe_sha(r)) == 16


def test_recipe_has_what_the_hub_needs() -> None:
    pk = set(Recipe().packages)
    assert {"linux-image-amd64", "wireguard-tools", "openssh-server", "nftables", "postgresql", "caddy",
            "bubblewrap", "python3-venv", "systemd-sysv"} <= pk


@pytest.mark.parametrize("bad", ["", "A", "1vm", "vm_1", "averyverylongname", "vm/x"])
def test_check_name_refuses_what_cannot_name_a_netns(bad: str) -> None:
    with pytest.raises(ValueError):
        check_name(bad)


def test_check_name_accepts_short_names() -> None:
    assert check_name("hub1") == "hub1"


def test_net_plan_addresses_stay_on_the_segment() -> None:
    plan = NetPlan("hub1")
    assert plan.netns == "vm-hub1"
    assert VM_ADDRESS.ip in SEGMENT and GATEWAY.ip in SEGMENT
    addrs = {plan.guest_address(i).ip for i in range(200)}
    assert len(addrs) == 200 and all(a in SEGMENT for a in addrs)
    assert VM_ADDRESS.ip not in addrs and GATEWAY.ip not in addrs
    with pytest.raises(ValueError):
        plan.guest_address(1000)


def test_kernel_append_carries_the_address() -> None:
    line = kernel_append(NetPlan("hub1"))
    assert f"meshagents.net={VM_ADDRESS.with_prefixlen},{GATEWAY.ip}" in line
    assert "root=/dev/vda" in line and "net.ifnames=0" in line


def test_mac_is_stable_and_local() -> None:
    assert mac_address("a") == mac_address("a") != mac_address("b")
    assert mac_address("a").startswith("52:54:00:")


def test_qemu_argv_is_tcg_with_reboot_and_tap() -> None:
    argv = qemu_argv(image_dir=Path("/img"), run_dir=Path("/run/x"), plan=NetPlan("hub1"), mem_mb=512, smp=1)
    assert argv[argv.index("-accel") + 1] == "tcg"
    assert "-no-reboot" not in argv and "-enable-kvm" not in argv
    assert argv[argv.index("-m") + 1] == "512"
    assert any(a.startswith("tap,") and "ifname=tap0" in a for a in argv)
    assert "/run/x/disk.qcow2" in argv[argv.index("-drive") + 1]


def test_overlay_is_copy_on_write_over_raw() -> None:
    argv = overlay_argv(Path("/img/rootfs.raw"), Path("/run/x/disk.qcow2"))
    assert argv[argv.index("-b") + 1] == "/img/rootfs.raw" and argv[argv.index("-F") + 1] == "raw"


def test_ssh_config_pins_the_host_key() -> None:
    text = ssh_config_text(alias="vm-a", host="127.0.0.1", port=2222, key=Path("/k"),
                           known_hosts=Path("/kh"), control_path=Path("/r/ssh-%C"))
    assert "StrictHostKeyChecking yes" in text and "HostKeyAlias meshagents-vm" in text
    assert "Port 2222" in text and "IdentityFile /k" in text
