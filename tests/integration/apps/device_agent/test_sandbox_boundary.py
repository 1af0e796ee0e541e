"""The hardened sandbox is a boundary on its own, under real bubblewrap: what a child can
see, who it is, which calls it may make, its limits; relative paths are refused with
their stable status (room reply and audit chain); a symlink swapped in during a request
does not escape (exec, fs.read, fs.list, fs.write); fs.write keeps the target's mode;
a manifest reaching the agent's own state is refused."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
from pathlib import Path
from typing import Any

import pytest

from meshagents.apps.device_agent import pidscgroup, sandbox
from meshagents.apps.device_agent.capabilities.base import Context
from meshagents.apps.device_agent.pipeline import Pipeline
from meshagents.errors import FnError
from meshagents.trust import manifest as trust_manifest
from tests.testbed.agent_rig import Rig, _exe, default_capabilities, make_rig
from tests.testbed.host import require_binary, require_root

pytestmark = pytest.mark.integration

PY = shutil.which("python3", path="/usr/bin:/bin") or "/usr/bin/python3"


def _rig(tmp_path: Path, extra: list[dict[str, Any]] | None = None) -> Rig:
    require_root()
    require_binary("bwrap")
    files, writable = tmp_path / "a" / "files", tmp_path / "a" / "writable"
    caps = [
        *default_capabilities(files, writable),
        {
            "name": "shell.exec.cat",
            "executables": _exe("cat"),
            "path_prefixes": [str(files), "/home"],
            "timeout_s": 10,
        },
        {
            "name": "shell.exec.ls",
            "executables": _exe("ls"),
            "path_prefixes": [str(files), "/home"],
            "flags": ["-l", "-a", "-la"],
            "timeout_s": 10,
        },
        {
            "name": "shell.exec.catcwd",
            "executables": _exe("cat"),
            "path_prefixes": [str(files)],
            "cwd": str(files),
            "timeout_s": 10,
        },
    ]
    caps = [c for c in caps if c["name"] != "shell.exec.ls" or "flags" in c]
    return make_rig(tmp_path / "a", capabilities=caps + (extra or []))


def _ctx(rig: Rig) -> Context:
    return Context(sandbox=True, hidden=rig.config.protected_paths())


def _py(rig: Rig, pipe: Pipeline, code: str) -> str:
    out = pipe.process(rig.content("shell.exec.python3", {"argv": ["python3", "-c", code]}), None, _ctx(rig))
    assert out.status == "ok", out
    assert "(bwrap)" in out.reason
    return out.output


def test_relative_paths_are_refused_in_the_room_and_the_chain(tmp_path: Path) -> None:
    """Issue 16: `!exec cat etc/shadow` printed /etc/shadow, `!exec ls -la .` listed /."""
    rig = _rig(tmp_path)
    pipe = Pipeline(rig.config)
    try:
        for cap, argv in (("shell.exec.cat", ["cat", "etc/shadow"]), ("shell.exec.ls", ["ls", "-la", "."])):
            out = pipe.process(rig.content(cap, {"argv": argv}), None, _ctx(rig))
            assert out.status == "rejected_args" and "relative" in out.reason, out
            entry = pipe.audit.entries()[-1]
            assert entry.status == "rejected_args" and entry.kind == "event" and entry.capability == cap
        out = pipe.process(rig.content("shell.exec.ls", {"argv": ["ls", "-la"]}), None, _ctx(rig))
        assert out.status == "ok" and "hello.txt" in out.output  # runs in its first prefix, not /
        out = pipe.process(rig.content("shell.exec.catcwd", {"argv": ["cat", "hello.txt"]}), None, _ctx(rig))
        assert out.status == "ok" and out.output == "hello from the device\n"
        assert pipe.audit.verify().ok
    finally:
        pipe.close()


def test_the_child_sees_only_what_it_needs(tmp_path: Path) -> None:
    rig = _rig(tmp_path)
    sock_dir = Path(f"/run/meshagents-test-{secrets.token_hex(4)}")
    sock_dir.mkdir()
    bus = socket.socket(socket.AF_UNIX)
    bus.bind(str(sock_dir / "bus.sock"))  # stands for systemd's private socket or D-Bus
    bus.listen(1)
    pipe = Pipeline(rig.config)
    state = rig.config.data_dir
    try:
        probe = (
            "import os, socket\n"
            "def tryread(p):\n"
            "    try:\n"
            "        open(p, 'rb').read(1); return 'READ'\n"
            "    except OSError as e:\n"
            "        return type(e).__name__\n"
            "def trylist(p):\n"
            "    try:\n"
            "        os.listdir(p); return 'LISTED'\n"
            "    except OSError as e:\n"
            "        return type(e).__name__\n"
            f"print('shadow', tryread('/etc/shadow'))\n"
            f"print('root', trylist('/root'))\n"
            f"print('state', trylist({str(state)!r}))\n"
            f"print('config', tryread({str(rig.config_path)!r}))\n"
            "print('run', trylist('/run'))\n"
            "s = socket.socket(socket.AF_UNIX)\n"
            "try:\n"
            f"    s.connect({str(sock_dir / 'bus.sock')!r}); print('bus CONNECTED')\n"
            "except OSError as e:\n"
            "    print('bus', type(e).__name__)\n"
            "for p in ('/run/systemd/private', '/run/dbus/system_bus_socket',\n"
            "          '/var/run/dbus/system_bus_socket'):\n"
            "    print('sys', trylist(p))\n"
            "open('/tmp/meshagents-sandbox-marker', 'w').write('x')\n"
            "print('uid', os.getuid(), os.geteuid())\n"
            "st = dict(l.split(':', 1) for l in open('/proc/self/status') if ':' in l)\n"
            "for k in ('CapEff', 'CapPrm', 'CapBnd', 'NoNewPrivs', 'Seccomp'):\n"
            "    print(k, st[k].strip())\n"
        )
        out = _py(rig, pipe, probe)
        lines = dict(line.split(" ", 1) for line in out.splitlines() if " " in line)
        assert lines["shadow"] == "FileNotFoundError", out
        assert lines["root"] == "FileNotFoundError", out
        assert lines["state"] == "FileNotFoundError", out
        assert lines["config"] == "FileNotFoundError", out
        assert lines["run"] == "FileNotFoundError", out
        assert lines["bus"] == "FileNotFoundError", out
        assert "CONNECTED" not in out
        assert lines["uid"] == "65534 65534"
        assert lines["CapEff"] == "0000000000000000" and lines["CapPrm"] == "0000000000000000"
        assert lines["CapBnd"] == "0000000000000000"
        assert lines["NoNewPrivs"] == "1" and lines["Seccomp"] == "2"
        assert not Path("/tmp/meshagents-sandbox-marker").exists()  # its /tmp was its own
    finally:
        pipe.close()
        bus.close()
        shutil.rmtree(sock_dir)


def test_the_state_dir_is_masked_even_under_a_granted_prefix(tmp_path: Path) -> None:
    """Defence in depth: a bind that covers the state (a manifest the agent would refuse)
    still shows an empty directory there."""
    rig = _rig(tmp_path)
    state = str(rig.config.data_dir)
    plan = sandbox.SandboxPlan(
        [PY, "-c", f"import os; print(sorted(os.listdir({state!r})))"],
        readable=(str(tmp_path),),
        hidden=rig.config.protected_paths(),
    )
    res = sandbox.run(plan, timeout_s=10, output_cap=4096)
    assert res.exit_code == 0 and res.output.strip() == b"[]", res


def test_seccomp_denies_the_dangerous_calls(tmp_path: Path) -> None:
    rig = _rig(tmp_path)
    pipe = Pipeline(rig.config)
    try:
        code = (
            "import ctypes, os\n"
            "libc = ctypes.CDLL(None, use_errno=True)\n"
            "nr = {'x86_64': dict(ptrace=101, mount=165, keyctl=250, init_module=175, finit_module=313,\n"
            "                    delete_module=176, bpf=321, unshare=272),\n"
            "      'aarch64': dict(ptrace=117, mount=40, keyctl=219, init_module=105, finit_module=273,\n"
            "                    delete_module=106, bpf=280, unshare=97)}[os.uname().machine]\n"
            "for name, n in sorted(nr.items()):\n"
            "    arg = 0x10000000 if name == 'unshare' else 0\n"
            "    r = libc.syscall(n, arg, 0, 0, 0, 0)\n"
            "    print(name, r, ctypes.get_errno())\n"
            "pid = os.fork()\n"  # plain fork still works
            "if pid == 0:\n"
            "    os._exit(7)\n"
            "print('fork', os.waitpid(pid, 0)[1] >> 8)\n"
        )
        out = _py(rig, pipe, code)
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
            assert f"{name} -1 1\n" in out, (name, out)  # -1, EPERM
        assert "fork 7" in out
    finally:
        pipe.close()


def test_memory_and_process_limits(tmp_path: Path) -> None:
    rig = _rig(tmp_path)
    pipe = Pipeline(rig.config)
    try:
        out = _py(
            rig,
            pipe,
            "try:\n    b = bytearray(2 << 30); print('ALLOCATED')\nexcept MemoryError:\n    print('MEM')\n",
        )
        assert "MEM" in out and "ALLOCATED" not in out
        if pidscgroup.root() is None:
            pytest.fail("no writable pids cgroup on this machine: the PID limit cannot be shown")
        code = (
            "import os, time\n"
            "n = 0\n"
            "try:\n"
            f"    for i in range({sandbox.MAX_PIDS + 50}):\n"
            "        pid = os.fork()\n"
            "        if pid == 0:\n"
            "            time.sleep(20); os._exit(0)\n"
            "        n += 1\n"
            "    print('FORKED', n)\n"
            "except OSError as e:\n"
            "    print('LIMIT', n, e.errno)\n"
        )
        out = _py(rig, pipe, code)
        assert out.startswith("LIMIT"), out
        assert int(out.split()[1]) < sandbox.MAX_PIDS
    finally:
        pipe.close()


def _swap_to_link(path: Path, target: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)  # a directory cannot be renamed over; the swap need not be atomic
    tmp = path.with_name(path.name + ".swap")
    tmp.symlink_to(target)
    os.replace(tmp, path)


def test_a_symlink_swapped_during_a_request_does_not_escape(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("SECRET outside the prefixes\n")
    rig = _rig(tmp_path)
    pipe = Pipeline(rig.config)
    ctx = _ctx(rig)
    try:
        cases: list[tuple[str, dict[str, Any], Path, Path]] = []
        for i, (cap, key) in enumerate(
            (("shell.exec.cat", "argv"), ("fs.read", "path"), ("fs.list", "path"))
        ):
            d = rig.files / f"d{i}"
            d.mkdir()
            (d / "f").write_text("inside\n")
            target = d if cap == "fs.list" else d / "f"
            args: dict[str, Any] = {"argv": ["cat", str(d / "f")]} if key == "argv" else {"path": str(target)}
            cases.append((cap, args, d, target))
        for cap, args, d, target in cases:
            for swap in ("leaf", "parent"):
                content = rig.content(cap, args)
                verdict = pipe.check(content)
                assert verdict.ok, verdict  # checked while it was a plain file / directory
                if swap == "leaf":
                    _swap_to_link(target, outside / "secret" if target.name == "f" else outside)
                else:
                    _swap_to_link(d, outside)
                verdict = pipe.begin(verdict)
                result = pipe.execute(verdict, ctx)
                pipe.finish(verdict, result, 0)
                assert "SECRET" not in result.output, (cap, swap, result)
                assert "secret" not in result.output, (cap, swap, result)
                # put it back for the next round
                if d.is_symlink():
                    d.unlink()
                    d.mkdir()
                if target.is_symlink():
                    target.unlink()
                if target.name == "f":
                    target.write_text("inside\n")
                else:
                    target.mkdir(exist_ok=True)
                    (target / "f").write_text("inside\n")
        assert pipe.audit.verify().ok
    finally:
        pipe.close()


def test_fs_write_keeps_the_mode_and_refuses_a_swapped_directory(tmp_path: Path) -> None:
    rig = _rig(tmp_path)
    pipe = Pipeline(rig.config)
    try:
        from meshagents.apps.device_agent.capabilities import fs_write

        target = rig.writable / "conf"
        target.write_text("old\n")
        target.chmod(0o640)
        d = trust_manifest.decide(pipe.manifest(), "fs.write", {"path": str(target), "content": "new\n"})
        res = fs_write.run(d, "new\n", _ctx(rig))
        assert res.status == "ok" and target.read_text() == "new\n"
        assert (target.stat().st_mode & 0o777) == 0o640
        sub = rig.writable / "sub"
        sub.mkdir()
        outside = tmp_path / "outside-w"
        outside.mkdir()
        d = trust_manifest.decide(pipe.manifest(), "fs.write", {"path": str(sub / "x"), "content": "x"})
        assert d.allowed
        _swap_to_link(sub, outside)
        res = fs_write.run(d, "x", _ctx(rig))
        assert res.status == "error" and res.detail == "path_swapped", res
        assert list(outside.iterdir()) == []
    finally:
        pipe.close()


def test_a_manifest_reaching_the_agent_state_is_refused(tmp_path: Path) -> None:
    rig = _rig(tmp_path)
    caps = json.loads(rig.manifest_path.read_text())["capabilities"]
    caps.append({"name": "fs.read.all", "path_prefixes": [str(tmp_path)]})
    rig.resign(capabilities=caps, serial=2)
    pipe = Pipeline(rig.config)
    try:
        with pytest.raises(FnError) as err:
            pipe.manifest()
        assert err.value.code == "manifest_covers_agent_state"
        out = pipe.process(rig.content("system.info", {}), None, _ctx(rig))
        assert out.status == "rejected_capability" and "manifest_covers_agent_state" in out.reason
        assert pipe.audit.entries()[-1].status == "rejected_capability"
    finally:
        pipe.close()
    with pytest.raises(FnError) as err:
        trust_manifest.sign(
            {
                **json.loads(rig.manifest_path.read_text()),
                "capabilities": [{"name": "fs.read", "path_prefixes": ["/var"]}],
            },
            rig.operator,
        )
    assert err.value.code == "manifest_covers_agent_state"
