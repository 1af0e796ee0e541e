"""Boot, reach and stop a VM of the cached image (qemu TCG, tap on a bridge in a netns).

    vm = up("hub1")                    # builds the image if needed, boots, waits for sshd
    vm.ssh("wg --version")             # CompletedProcess (through a loopback forward)
    vm.attach("myns")                  # put namespace myns on the VM's segment -> its address
    vm.reboot()                        # guest reboot; same disk, same address; seconds taken
    vm.info()                          # JSON-able connection info
    down("hub1")                       # qemu, forwards, namespace and overlay disk gone

Each VM has a namespace ``vm-<name>`` holding a bridge ``br0`` (the VM's "internet",
198.51.100.0/24 by default, the bridge at .1) and the tap ``tap0`` that qemu opens; the
VM has .2. qemu itself runs in that namespace, so the guest never sees the root
namespace's routes. SSH from the root namespace goes through a loopback forward
(``meshagents.testbed.rig.forward``) on 127.0.0.1:<port>; test namespaces joined with
``attach`` reach the VM's public address directly, as devices on the internet would.
The run record is ``<state>/vm/<name>/vm.json``, so ``./fn vm ssh`` finds a VM that
``./fn vm up`` started in another process.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from meshagents import procs
from meshagents.errors import FnError
from meshagents.procs import pid_alive
from meshagents.state import state_dir
from meshagents.testbed.vm import image as image_mod
from meshagents.testbed.vm.recipe import (
    GATEWAY,
    NetPlan,
    check_name,
    overlay_argv,
    qemu_argv,
    ssh_config_text,
)

NETNS_DIR = Path("/run/netns")
BOOT_TIMEOUT = 420.0


def runs_dir(base: Path | None = None) -> Path:
    d = base or (state_dir() / "vm")
    d.mkdir(parents=True, exist_ok=True, mode=0o700)
    return d


def _run(argv: list[str], *, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return procs.run(argv, code="vm_command_failed", check=check, timeout=timeout)




def _stop_pid(pid: int, *, grace: float = 5.0) -> None:
    if pid <= 0 or not pid_alive(pid):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and pid_alive(pid):
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        time.sleep(0.1)
    if pid_alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, 0)


@dataclass
class Vm:
    """One running VM as recorded in ``vm.json`` (plain data plus thin I/O helpers)."""

    name: str
    run_dir: str
    netns: str
    public_ip: str
    gateway_ip: str
    ssh_host: str
    ssh_port: int
    ssh_key: str
    ssh_config: str
    ssh_alias: str
    known_hosts: str
    image: str
    qemu_pid: int = 0
    forward_pids: dict[str, int] = field(default_factory=dict)
    forwards: dict[str, int] = field(default_factory=dict)
    attached: dict[str, str] = field(default_factory=dict)
    boot_seconds: float = 0.0
    #: the process the VM belongs to (a test session); 0: nobody's (``./fn vm up``), kept until
    #: ``down``. ``down --stale`` removes the VMs whose owner is gone (a killed test run).
    owner_pid: int = 0

    # --- record -------------------------------------------------------------------------------
    @property
    def record(self) -> Path:
        return Path(self.run_dir) / "vm.json"

    def save(self) -> None:
        tmp = self.record.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=1) + "\n")
        tmp.replace(self.record)

    @classmethod
    def load(cls, name: str, base: Path | None = None) -> Vm:
        record = runs_dir(base) / check_name(name) / "vm.json"
        if not record.is_file():
            raise FnError("vm_not_found", f"no VM named {name!r} (no {record}); start one with ./fn vm up")
        data = json.loads(record.read_text())
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Serialise changes to the record between processes (attach, forward)."""
        with open(Path(self.run_dir) / "lock", "w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            fresh = json.loads(self.record.read_text())
            self.attached, self.forwards, self.forward_pids = (
                fresh["attached"], fresh["forwards"], fresh["forward_pids"])
            yield
            self.save()

    def info(self) -> dict[str, Any]:
        """What a caller needs to reach the VM (printed by ``./fn vm up`` as JSON)."""
        return {
            "name": self.name,
            "netns": self.netns,
            "public_ip": self.public_ip,
            "gateway_ip": self.gateway_ip,
            "ssh": {"host": self.ssh_host, "port": self.ssh_port, "user": "root", "key": self.ssh_key,
                    "config": self.ssh_config, "alias": self.ssh_alias, "known_hosts": self.known_hosts},
            "forwards": self.forwards,
            "attached": self.attached,
            "boot_seconds": round(self.boot_seconds, 1),
            "run_dir": self.run_dir,
        }

    # --- ssh ------------------------------------------------------------------------------------
    def ssh_argv(
        self, command: str | None = None, *, via_segment: bool = False, interactive: bool = False
    ) -> list[str]:
        """``ssh -F <config> <alias> [command]``; ``via_segment`` targets the public address
        (the caller then runs it inside a namespace on the segment)."""
        argv = ["ssh", "-F", self.ssh_config, *(["-t"] if interactive else ["-o", "BatchMode=yes"])]
        if via_segment:
            argv += ["-o", f"HostName={self.public_ip}", "-o", "Port=22"]
        argv.append(self.ssh_alias)
        if command is not None:
            argv.append(command)
        return argv

    def ssh(
        self, command: str, *, check: bool = True, timeout: float = 120, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            self.ssh_argv(command), capture_output=True, text=True, timeout=timeout, input=input, check=False
        )
        if check and proc.returncode != 0:
            raise FnError(
                "vm_ssh_failed", f"{command!r} on VM {self.name} exited {proc.returncode}: "
                f"{(proc.stderr or proc.stdout).strip()[-800:]}"
            )
        return proc

    def wait_ssh(self, timeout: float = BOOT_TIMEOUT) -> float:
        """Seconds until ``ssh true`` answers (the guest's sshd is up)."""
        t0 = time.monotonic()
        while True:
            with contextlib.suppress(subprocess.TimeoutExpired):
                if self.ssh("true", check=False, timeout=30).returncode == 0:
                    return time.monotonic() - t0
            if not pid_alive(self.qemu_pid):
                raise FnError("vm_boot_failed", f"qemu for VM {self.name} exited; see {self.console_log}")
            if time.monotonic() - t0 > timeout:
                raise FnError("vm_boot_failed", f"VM {self.name}: no sshd after {timeout:.0f} s; "
                              f"see {self.console_log}")
            time.sleep(2)

    def close_master(self) -> None:
        """End the SSH ControlMaster (after a reboot or before teardown)."""
        subprocess.run(["ssh", "-F", self.ssh_config, "-O", "exit", self.ssh_alias],
                       capture_output=True, timeout=10, check=False)

    @property
    def console_log(self) -> Path:
        return Path(self.run_dir) / "console.log"

    def boot_id(self) -> str:
        return self.ssh("cat /proc/sys/kernel/random/boot_id").stdout.strip()

    def reboot(self, timeout: float = BOOT_TIMEOUT) -> float:
        """Reboot the guest (``systemctl reboot``) and wait until sshd answers from a new
        boot; returns the seconds from the command to the new boot's first answer."""
        before = self.boot_id()
        t0 = time.monotonic()
        self.ssh("systemctl reboot", check=False, timeout=30)
        self.close_master()  # a dead master would swallow the next commands until ServerAlive gives up
        while True:
            if time.monotonic() - t0 > timeout:
                raise FnError("vm_boot_failed", f"VM {self.name} did not come back within {timeout:.0f} s")
            if not pid_alive(self.qemu_pid):
                raise FnError("vm_boot_failed", f"qemu for VM {self.name} exited during reboot")
            with contextlib.suppress(FnError, subprocess.TimeoutExpired):
                if self.boot_id() != before:
                    return time.monotonic() - t0
            time.sleep(2)

    # --- network ------------------------------------------------------------------------------
    def attach(self, ns: str, *, default_route: bool = False) -> ipaddress.IPv4Interface:
        """Put namespace ``ns`` (made by the caller) on the VM's segment: a veth from ``ns``
        (``eth-vm``... named per call) to the bridge; returns the address given to ``ns``.
        ``default_route`` points the namespace's default route at the bridge (.1)."""
        plan = NetPlan(self.name)
        with self._locked():
            if ns in self.attached:
                return ipaddress.IPv4Interface(self.attached[ns])
            addr = plan.guest_address(len(self.attached))
            tag = secrets.token_hex(3)
            inner, outer = f"vs{tag}", f"vb{tag}"
            _run(["ip", "link", "add", inner, "netns", ns, "type", "veth", "peer", "name", outer,
                  "netns", self.netns])
            _run(["ip", "-n", self.netns, "link", "set", outer, "master", plan.bridge, "up"])
            _run(["ip", "-n", ns, "addr", "add", addr.with_prefixlen, "dev", inner])
            _run(["ip", "-n", ns, "link", "set", inner, "up"])
            _run(["ip", "-n", ns, "link", "set", "lo", "up"])
            if default_route:
                _run(["ip", "-n", ns, "route", "replace", "default", "via", str(GATEWAY.ip)])
            self.attached[ns] = addr.with_prefixlen
        return addr

    def forward(self, port: int) -> int:
        """A loopback port in the root namespace forwarded to the VM's ``port`` (e.g. 443)."""
        with self._locked():
            key = str(port)
            if key in self.forwards and pid_alive(self.forward_pids.get(key, 0)):
                return self.forwards[key]
            local, pid = _start_forward(self.netns, self.public_ip, port, Path(self.run_dir))
            self.forwards[key] = local
            self.forward_pids[key] = pid
        return local


def _start_forward(netns: str, host: str, port: int, run_dir: Path) -> tuple[int, int]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    fd = sock.fileno()
    with open(run_dir / f"forward-{port}.log", "ab") as log:
        proc = subprocess.Popen(
            ["nsenter", f"--net={NETNS_DIR / netns}", sys.executable, "-m", "meshagents.testbed.rig.forward",
             "--listen", f"{fd}={host}:{port}"],
            pass_fds=(fd,), stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
        )
    local = int(sock.getsockname()[1])
    sock.close()
    return local, proc.pid


def _netns_exists(ns: str) -> bool:
    return (NETNS_DIR / ns).exists()


def _make_network(plan: NetPlan) -> None:
    _run(["ip", "netns", "add", plan.netns])
    try:
        n = ["ip", "-n", plan.netns]
        _run([*n, "link", "set", "lo", "up"])
        _run([*n, "link", "add", plan.bridge, "type", "bridge"])
        _run([*n, "addr", "add", GATEWAY.with_prefixlen, "dev", plan.bridge])
        _run([*n, "link", "set", plan.bridge, "up"])
        _run([*n, "tuntap", "add", "dev", plan.tap, "mode", "tap"])
        _run([*n, "link", "set", plan.tap, "master", plan.bridge, "up"])
    except FnError:
        _run(["ip", "netns", "del", plan.netns], check=False)
        raise


def up(
    name: str | None = None,
    *,
    mem_mb: int = 1024,
    smp: int = 2,
    base: Path | None = None,
    log: Any = None,
    owner_pid: int = 0,
) -> Vm:
    """Boot a VM on a copy-on-write overlay of the cached image; returns once sshd answers."""
    say = log or (lambda line: print(line, file=sys.stderr, flush=True))
    if os.geteuid() != 0:
        raise FnError("needs_root", "booting the VM needs root (network namespace, tap device)")
    for tool in ("qemu-system-x86_64", "qemu-img", "nsenter", "ssh"):
        if shutil.which(tool) is None:
            raise FnError("missing_tool", f"{tool} not found (apt-get install qemu-system-x86 qemu-utils)")
    name = check_name(name or f"vm{secrets.token_hex(3)}")
    plan = NetPlan(name)
    run_dir = runs_dir(base) / name
    if (run_dir / "vm.json").exists():
        old = Vm.load(name, base)
        if pid_alive(old.qemu_pid):
            raise FnError("vm_exists", f"VM {name} is running (./fn vm down {name} first)")
        down(name, base=base)
    if _netns_exists(plan.netns):
        raise FnError("vm_exists", f"namespace {plan.netns} exists; remove it or pick another --name")
    img = image_mod.build(log=say)
    run_dir.mkdir(parents=True, mode=0o700)
    t0 = time.monotonic()
    _make_network(plan)
    vm = Vm(
        name=name, run_dir=str(run_dir), netns=plan.netns, public_ip=plan.vm_ip, gateway_ip=plan.gateway_ip,
        ssh_host="127.0.0.1", ssh_port=0, ssh_key=str(img.key), ssh_config=str(run_dir / "ssh_config"),
        ssh_alias=f"vm-{name}", known_hosts=str(img.known_hosts), image=img.sha, owner_pid=owner_pid,
    )
    try:
        _run(overlay_argv(img.rootfs, run_dir / "disk.qcow2"))
        _run(["nsenter", f"--net={NETNS_DIR / plan.netns}",
              *qemu_argv(image_dir=img.dir, run_dir=run_dir, plan=plan, mem_mb=mem_mb, smp=smp)], timeout=60)
        vm.qemu_pid = int((run_dir / "qemu.pid").read_text().strip())
        port, pid = _start_forward(plan.netns, plan.vm_ip, 22, run_dir)
        vm.ssh_port, vm.forwards["22"], vm.forward_pids["22"] = port, port, pid
        Path(vm.ssh_config).write_text(ssh_config_text(
            alias=vm.ssh_alias, host="127.0.0.1", port=port, key=img.key, known_hosts=img.known_hosts,
            control_path=run_dir / "ssh-%C"))
        vm.save()
        say(f"VM {name}: qemu pid {vm.qemu_pid}, waiting for sshd ({plan.vm_ip} in netns {plan.netns}) ...")
        vm.wait_ssh()
        vm.boot_seconds = time.monotonic() - t0
        vm.save()
        say(f"VM {name}: sshd up after {vm.boot_seconds:.1f} s")
    except BaseException:
        down(name, base=base)
        raise
    return vm


def down(name: str, *, base: Path | None = None) -> bool:
    """Stop VM ``name`` and remove everything it made; True when there was something."""
    check_name(name)
    plan = NetPlan(name)
    run_dir = runs_dir(base) / name
    found = False
    record = run_dir / "vm.json"
    if record.is_file():
        found = True
        data = json.loads(record.read_text())
        # the ControlMaster process would otherwise linger until ServerAlive gives up
        subprocess.run(["ssh", "-F", data["ssh_config"], "-O", "exit", data["ssh_alias"]],
                       capture_output=True, timeout=10, check=False)
        _stop_pid(int(data.get("qemu_pid") or 0))
        for pid in data.get("forward_pids", {}).values():
            _stop_pid(int(pid))
    pidfile = run_dir / "qemu.pid"
    if pidfile.is_file():
        with contextlib.suppress(ValueError):
            _stop_pid(int(pidfile.read_text().strip()))
    if _netns_exists(plan.netns):
        found = True
        _run(["ip", "netns", "del", plan.netns], check=False)
    if run_dir.exists():
        found = True
        shutil.rmtree(run_dir, ignore_errors=True)
    return found


def running(base: Path | None = None) -> list[Vm]:
    out = []
    for record in sorted(runs_dir(base).glob("*/vm.json")):
        with contextlib.suppress(FnError, ValueError, TypeError, json.JSONDecodeError):
            out.append(Vm.load(record.parent.name, base))
    return out


#: Where the test bed's fixtures and benchmarks keep their VMs' run directories
#: (``<dir>/<name>/vm.json``), beside ``runs_dir()`` of ``./fn vm up``.
FIXTURE_GLOB = "meshagents-vm-*"


def stale(tmp: Path = Path("/var/tmp"), base: Path | None = None) -> list[tuple[str, Path]]:
    """(name, base) of every recorded VM whose owner process is gone (its test run was
    killed): in ``runs_dir()`` and in the fixtures' ``/var/tmp/meshagents-vm-*`` directories.
    A VM without an owner (``./fn vm up``) is never stale."""
    bases = [runs_dir(base), *sorted(p for p in tmp.glob(FIXTURE_GLOB) if p.is_dir())]
    out = []
    for b in bases:
        for record in sorted(b.glob("*/vm.json")):
            with contextlib.suppress(ValueError, OSError, json.JSONDecodeError):
                owner = int(json.loads(record.read_text()).get("owner_pid") or 0)
                if owner and not pid_alive(owner):
                    out.append((record.parent.name, b))
    return out


def down_stale(tmp: Path = Path("/var/tmp"), base: Path | None = None) -> list[str]:
    """``down`` every stale VM (and its fixture directory once empty); the names removed."""
    removed = []
    for name, b in stale(tmp, base):
        down(name, base=b)
        removed.append(name)
        if b.parent == tmp and b.name.startswith("meshagents-vm-"):
            with contextlib.suppress(OSError):
                b.rmdir()  # only when nothing else is in it
    return removed
