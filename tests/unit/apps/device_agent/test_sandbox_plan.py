"""The hardened sandbox's pure parts: what the bwrap command line shows the child, and
the seccomp program (run through the module's own BPF interpreter)."""

from __future__ import annotations

import struct

import pytest

from meshagents.apps.device_agent import sandbox, seccomp

pytestmark = pytest.mark.unit

BW = "/usr/bin/bwrap"


def binds(cmd: list[str]) -> dict[str, str]:
    out = {}
    for i, word in enumerate(cmd):
        if word in ("--ro-bind", "--bind", "--tmpfs", "--symlink"):
            target = cmd[i + 1] if word == "--tmpfs" else cmd[i + 2]
            out[target] = word
    return out


def test_only_what_the_capability_needs_is_visible() -> None:
    plan = sandbox.SandboxPlan(
        argv=["/usr/bin/cat", "x"],
        cwd="/home/op",
        readable=("/home/op",),
        writable=("/srv/out",),
        hidden=("/home/op/.local/state/meshagents", "/var/lib/meshagents"),
    )
    seen = binds(sandbox.wrap(plan, BW, exists=lambda p: True, isdir=lambda p: True))
    assert seen["/home/op"] == "--ro-bind" and seen["/srv/out"] == "--bind"
    assert seen["/tmp"] == "--tmpfs"  # private /tmp: no prefix is /tmp
    assert seen["/home/op/.local/state/meshagents"] == "--tmpfs"  # masked under a bind
    assert "/var/lib/meshagents" not in seen  # not under any bind: simply absent
    for never in ("/", "/root", "/run", "/sys", "/etc", "/etc/shadow", "/var", "/home"):
        assert never not in seen, never
    assert "/etc/ld.so.cache" in seen and "/etc/passwd" in seen


def test_tmp_as_a_prefix_is_the_real_tmp_and_parents_come_first() -> None:
    plan = sandbox.SandboxPlan(argv=["/bin/ls"], readable=("/tmp/a/b", "/tmp"), writable=("/tmp/a",))
    cmd = sandbox.wrap(plan, BW, exists=lambda p: True)
    assert "--tmpfs" not in cmd[: cmd.index("--cap-drop")] or binds(cmd).get("/tmp") != "--tmpfs"
    order = [
        cmd[i + 2]
        for i, w in enumerate(cmd)
        if w in ("--ro-bind", "--bind") and cmd[i + 2].startswith("/tmp")
    ]
    assert order == ["/tmp", "/tmp/a", "/tmp/a/b"]


def test_a_camera_node_is_passed_through() -> None:
    cmd = sandbox.wrap(
        sandbox.SandboxPlan(argv=["/usr/bin/ffmpeg"], devices=("/dev/video0",)), BW, exists=lambda p: True
    )
    i = cmd.index("--dev-bind")
    assert cmd[i : i + 3] == ["--dev-bind", "/dev/video0", "/dev/video0"] and i > cmd.index("--dev")


def test_seccomp_flag_and_network_resolver_files() -> None:
    cmd = sandbox.wrap(
        sandbox.SandboxPlan(argv=["/bin/true"], network=True), BW, seccomp_fd=7, exists=lambda p: True
    )
    assert cmd[cmd.index("--seccomp") + 1] == "7" and "--unshare-net" not in cmd
    assert "/etc/resolv.conf" in binds(cmd)


@pytest.mark.parametrize("machine", ["x86_64", "aarch64"])
def test_seccomp_program_denies_the_list_and_allows_the_rest(machine: str) -> None:
    prog = seccomp.program(machine)
    assert prog is not None and len(prog) % 8 == 0 and len(prog) // 8 < 256
    arch = seccomp.AUDIT_ARCH[machine]
    table = seccomp.TABLES[machine]
    eperm = seccomp.RET_ERRNO | seccomp.EPERM
    for name in (
        "ptrace",
        "mount",
        "keyctl",
        "init_module",
        "finit_module",
        "delete_module",
        "bpf",
        "unshare",
    ):
        assert seccomp.evaluate(prog, table[name], arch) == eperm, name
    for nr in (0, 1, 2, 3, 59, 60, 63, 221):  # read/write/open/close/execve/exit... (either table)
        if nr not in table.values():
            assert seccomp.evaluate(prog, nr, arch) == seccomp.RET_ALLOW, nr
    assert seccomp.evaluate(prog, table["clone3"], arch) == seccomp.RET_ERRNO | seccomp.ENOSYS
    assert seccomp.evaluate(prog, table["clone"], arch, (0x01200011,)) == seccomp.RET_ALLOW  # fork()
    assert seccomp.evaluate(prog, table["clone"], arch, (0x10000000,)) == eperm  # CLONE_NEWUSER
    assert seccomp.evaluate(prog, 0, 0x40000003) == seccomp.RET_KILL_PROCESS  # i386 entry
    if machine == "x86_64":
        assert seccomp.evaluate(prog, 0x40000000 + 1, arch) == seccomp.RET_KILL_PROCESS  # x32


def test_seccomp_unknown_arch_has_no_program() -> None:
    assert seccomp.program("riscv64") is None
    assert struct.calcsize("<HBBI") == 8
