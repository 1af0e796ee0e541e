"""A provisioned hub on a real Debian 12 VM (kernel WireGuard, systemd), driven from an
operator namespace on the VM's "internet" segment — never from the root namespace.

    hub = vm_hub                     # module-scoped: provisioned once (the figure is printed)
    hub.provision(*flags)            # re-run the pipeline from the operator namespace
    hub.fn("hub", "status")          # ./fn hub status --host <vm> from the operator namespace
    hub.vm.ssh("systemctl ...")      # the VM itself
    hub.https(path)                  # GET https://<domain><path> with Caddy's CA pinned

The pipeline's downloads (the remote bundle's wheels, Synapse's wheels) are gathered
in the root namespace first, where the package index is reachable; the runs themselves
then only need the VM.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import ssl
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.testbed.host import ROOT

FLAGS = ("--tls", "internal", "--endpoint")
PY = ROOT / ".venv" / "bin" / "python"


def nsenter(ns: str) -> list[str]:
    return ["nsenter", f"--net=/run/netns/{ns}"]


@dataclass
class VmHub:
    vm: Any
    ns: str
    domain: str
    state: Path
    ssh_config: Path
    alias: str
    provision_s: float = 0.0
    first_stderr: str = ""
    ca: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k != "FN_HOST"}
        env.update(FN_STATE_DIR=str(self.state), FN_SSH_CONFIG=str(self.ssh_config), PYTHONUNBUFFERED="1")
        return env

    def flags(self) -> list[str]:
        return ["--domain", self.domain, "--tls", "internal", "--endpoint", f"{self.vm.public_ip}:51820"]

    def provision(self, *extra: str, timeout: float = 2400) -> subprocess.CompletedProcess[str]:
        argv = [*nsenter(self.ns), str(ROOT / "pipelines" / "provision_wg_hub"), "--host", self.alias,
                *self.flags(), *extra]  # fmt: skip
        return subprocess.run(argv, cwd=ROOT, env=self.env(), capture_output=True, text=True, timeout=timeout)

    def fn(self, *args: str, timeout: float = 900, root: Path = ROOT) -> subprocess.CompletedProcess[str]:
        argv = [*nsenter(self.ns), str(root / "fn"), *args]
        return subprocess.run(argv, cwd=root, env=self.env(), capture_output=True, text=True, timeout=timeout)

    def json(self, *args: str, root: Path = ROOT) -> dict[str, Any]:
        proc = self.fn(*args, root=root)
        assert proc.returncode in (0, 1), proc.stderr[-3000:]
        out: dict[str, Any] = json.loads(proc.stdout)
        return out

    def https(self, path: str) -> tuple[int, bytes]:
        """GET through Caddy from the operator namespace, the hub's name resolved by this
        namespace's hosts file and the internal CA pinned (no other CA accepted)."""
        assert self.ca is not None
        code = (
            "import ssl,sys,urllib.request\n"
            f"ctx=ssl.create_default_context(cafile={str(self.ca)!r})\n"
            "try:\n"
            f" r=urllib.request.urlopen('https://{self.domain}'+sys.argv[1],context=ctx,timeout=30)\n"
            " sys.stdout.buffer.write(str(r.status).encode()+b'\\n'+r.read())\n"
            "except urllib.error.HTTPError as e:\n"
            " sys.stdout.buffer.write(str(e.code).encode()+b'\\n'+e.read())\n"
        )
        proc = subprocess.run(["ip", "netns", "exec", self.ns, "python3", "-c", code, path],
                              capture_output=True, timeout=60)  # fmt: skip
        assert proc.returncode == 0, proc.stderr.decode()[-2000:]
        status, _, body = proc.stdout.partition(b"\n")
        return int(status), body

    def units(self) -> dict[str, dict[str, str]]:
        names = ("meshagents-wg_hub meshagents-agents_and_robots meshagents-agents_dashboard "
                 "meshagents-synapse "
                 "meshagents-firewall meshagents-wg-wg0 caddy postgresql@15-main")  # fmt: skip
        out = self.vm.ssh(
            "for u in " + names + "; do echo \"== $u\"; systemctl show $u.service "
            "-p ActiveState,NRestarts,ActiveEnterTimestampMonotonic,MainPID,User; done"
        ).stdout  # fmt: skip
        units: dict[str, dict[str, str]] = {}
        cur = ""
        for line in out.splitlines():
            if line.startswith("== "):
                cur = line[3:]
                units[cur] = {}
            elif "=" in line:
                k, v = line.split("=", 1)
                units[cur][k] = v
        return units

    def files(self) -> dict[str, str]:
        """Every provisioned file's sha256 and mtime (a rewrite changes the mtime even when equal)."""
        out = self.vm.ssh(
            "find /etc/meshagents /etc/systemd/system -maxdepth 2 -type f -name '*' "
            "\\( -path '*meshagents*' -o -name 'meshagents-*' \\) -printf '%p %T@\\n' ; "
            "stat -c '%n %Y.%y' /etc/caddy/Caddyfile /etc/wireguard/wg0.conf /etc/wireguard/wg0.nft "
            "/var/lib/meshagents/agents_and_robots/bot.toml /var/lib/meshagents/matrix/settings.toml"
        ).stdout  # fmt: skip
        return dict(line.split(" ", 1) for line in out.splitlines() if " " in line)


def _ssh_config_for_segment(vm: Any, path: Path) -> None:
    """The VM's ssh config, but to its public address (from the operator namespace) and
    without the root namespace's control socket (each run makes its own)."""
    lines = []
    for line in Path(vm.ssh_config).read_text().splitlines():
        key = line.strip().split(" ", 1)[0]
        if key == "HostName":
            line = f"  HostName {vm.public_ip}"
        elif key == "Port":
            line = "  Port 22"
        elif key in ("ControlMaster", "ControlPath", "ControlPersist"):
            continue
        lines.append(line)
    path.write_text("\n".join(lines) + "\n")


def prefetch(vm: Any, root: Path = ROOT) -> None:
    """The downloads, in the root namespace (the operator namespace has no internet)."""
    from meshagents.remote.bundle import make_bundle, parse_probe
    from meshagents.remote.payload import wheels_dir
    from meshagents.remote.sshcmd import probe_command

    platform = parse_probe(vm.ssh(probe_command()).stdout)
    assert platform is not None
    make_bundle(platform, root=root)
    wheels_dir(platform)


def open_vm_hub(vm: Any, tag: str, work: Path) -> VmHub:
    """An operator namespace ``hpop<tag>`` on the VM's segment, its hosts file naming the hub's
    domain, an ssh config to the VM's public address and an empty operator state, and the
    pipeline's downloads gathered; not provisioned yet (``hub.provision()``). The one set-up
    of the test module and the benchmark; ``close_vm_hub`` undoes it."""
    ns = f"hpop{tag}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    vm.attach(ns)
    state = work / "operator-state"
    state.mkdir(mode=0o700, exist_ok=True)
    cfg = work / "ssh_config"
    _ssh_config_for_segment(vm, cfg)
    domain = f"hub-{tag}.test"
    hosts_dir = Path("/etc/netns") / ns
    hosts_dir.mkdir(parents=True, exist_ok=True)
    (hosts_dir / "hosts").write_text(f"127.0.0.1 localhost\n{vm.public_ip} {domain}\n")
    hub = VmHub(vm=vm, ns=ns, domain=domain, state=state, ssh_config=cfg, alias=vm.ssh_alias)
    prefetch(vm)
    return hub


def close_vm_hub(hub: VmHub) -> None:
    subprocess.run(["ip", "netns", "del", hub.ns], capture_output=True, check=False)
    subprocess.run(["rm", "-rf", f"/etc/netns/{hub.ns}"], capture_output=True, check=False)


def provision_first(hub: VmHub, work: Path) -> None:
    """The first run, from nothing; keeps its log, time and Caddy's root certificate (and, when
    it fails, the guest's journal of the hub's units beside the log)."""
    t0 = time.monotonic()
    proc = hub.provision()
    hub.provision_s = time.monotonic() - t0
    hub.first_stderr = proc.stderr
    (work / "provision-1.log").write_text(proc.stderr)
    if proc.returncode != 0:
        journal = hub.vm.ssh("journalctl -b --no-pager -o short-monotonic -u 'meshagents-*' -u caddy -n 400",
                             check=False).stdout  # fmt: skip
        (work / "journal.log").write_text(journal)
        raise AssertionError(
            f"{proc.stderr[-5000:]}\n--- guest journal ({work / 'journal.log'}):\n{journal[-4000:]}"
        )
    print(f"\nprovision from a fresh VM: {hub.provision_s:.1f} s", flush=True)
    ca = work / "caddy-root.crt"
    ca.write_text(hub.vm.ssh("cat /var/lib/caddy/.local/share/caddy/pki/authorities/local/root.crt").stdout)
    hub.ca = ca


@dataclass
class VmDevice:
    """A device on the VM hub's "internet": a namespace on the VM's segment with the hub's domain
    in its hosts file, enrolled over ``https://<domain>/enroll`` (Caddy, the internal CA pinned),
    its agent (wireguard-go, this checkout) running there."""

    name: str
    ns: str
    interface: str
    state: Path
    enrolled: dict[str, Any]
    agent: subprocess.Popen[bytes] | None = None
    log: Path | None = None

    restarts: int = 0
    _stopping: bool = False

    def start_agent(self) -> None:
        """Start the agent and keep it running as its unit does (``Restart=always``,
        ``RestartSec=2``): an agent that exits while the hub is away is started again."""
        self._spawn()
        threading.Thread(target=self._supervise, daemon=True).start()

    def _spawn(self) -> None:
        assert self.log is not None
        with open(self.log, "ab") as out:
            self.agent = subprocess.Popen(
                ["ip", "netns", "exec", self.ns, "env", f"FN_STATE_DIR={self.state}",
                 "FN_CALLER=device_agent", "PYTHONUNBUFFERED=1", str(PY), "-m",
                 "meshagents.apps.device_agent",
                 "--config", str(self.state / "device_agent" / "config.json")],
                cwd=ROOT, stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True,
            )  # fmt: skip

    def _supervise(self) -> None:
        while not self._stopping:
            assert self.agent is not None
            self.agent.wait()
            if self._stopping:
                return
            time.sleep(2)
            if not self._stopping:
                self.restarts += 1
                self._spawn()

    def stop_agent(self) -> None:
        self._stopping = True
        for _ in range(2):  # twice: a restart the supervisor had already begun is stopped too
            if self.agent is not None and self.agent.poll() is None:
                os.killpg(self.agent.pid, 15)
                try:
                    self.agent.wait(15)
                except subprocess.TimeoutExpired:
                    os.killpg(self.agent.pid, 9)
                    self.agent.wait(15)
            time.sleep(2.5)


def ask(hub: VmHub, device: str, command: str, *, timeout: float = 300,
        store: str = "vmhub") -> dict[str, Any]:  # fmt: skip
    """The operator's command to ``device`` through Caddy's TLS (tests/testbed/vmhub_chat.py);
    the device's answer as ``{"sender", "body", "seconds"}``."""
    assert hub.ca is not None
    creds = next((hub.state / "operator").glob("matrix-*.json"))
    argv = ["ip", "netns", "exec", hub.ns, "env", f"SSL_CERT_FILE={hub.ca}", "SSL_CERT_DIR=/nonexistent",
            f"FN_STATE_DIR={hub.state}", str(PY), "-m", "tests.testbed.vmhub_chat",
            "--creds", str(creds), "--bot", f"@bot:{hub.domain}", "--device", device, "--command", command,
            "--store", store, "--timeout", str(timeout)]  # fmt: skip
    deadline = time.monotonic() + timeout
    while True:  # as an operator would: try again while the homeserver is not back (after a reboot)
        proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=timeout + 120,
                              check=False)  # fmt: skip
        if proc.returncode == 0 or "matrix_login_failed" not in proc.stderr or time.monotonic() > deadline:
            break
        time.sleep(5)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    out: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return out


def enroll_device(hub: VmHub, tag: str, work: Path, *, timeout: float = 900) -> VmDevice:
    """Token on the operator's machine, ``enroll_device`` in the device's namespace against
    ``https://<domain>``, ``sign_pending_manifests --host --yes`` from the operator's namespace
    while the device waits for its signed manifest; then the agent started."""
    ns = f"hpdv{tag}"
    name = f"vmhub-dev-{tag}"
    state = Path("/var/tmp") / f"vmhub-dev-{tag}"  # not /tmp: a profile may grant /tmp
    state.mkdir(mode=0o700)
    subprocess.run(["ip", "netns", "add", ns], check=True)
    hub.vm.attach(ns)
    hosts_dir = Path("/etc/netns") / ns
    hosts_dir.mkdir(parents=True, exist_ok=True)
    (hosts_dir / "hosts").write_text(f"127.0.0.1 localhost\n{hub.vm.public_ip} {hub.domain}\n")
    dev = VmDevice(name=name, ns=ns, interface=f"wgd{tag}", state=state, enrolled={},
                   log=work / f"agent-{tag}.log")  # fmt: skip
    hub_key = hub.vm.ssh("wg show wg0 public-key").stdout.strip()
    tok = hub.fn("run", "enrollment_token_create", "--device-name", name, "--ttl-s", "1200",
                 "--hub-endpoint", f"https://{hub.domain}", "--hub-public-key", hub_key)  # fmt: skip
    assert tok.returncode == 0, tok.stderr[-3000:]
    token = json.loads(tok.stdout)["token"]
    env = {"PATH": os.environ["PATH"], "FN_STATE_DIR": str(state), "SSL_CERT_FILE": str(hub.ca),
           "SSL_CERT_DIR": "/nonexistent", "PYTHONUNBUFFERED": "1", "HOME": str(state)}  # fmt: skip
    log = work / f"enroll-{tag}.log"
    with open(log, "wb") as err:
        proc = subprocess.Popen(
            ["ip", "netns", "exec", ns, str(ROOT / "pipelines" / "enroll_device"), "--token", token,
             "--interface", dev.interface, "--config-dir", str(state / "wg"), "--no-systemd",
             "--service", "none"],
            cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err,
        )  # fmt: skip
    try:
        _finish_enrollment(hub, dev, proc, log, name, timeout)
    except BaseException:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        remove_device(dev)
        raise
    return dev


def _finish_enrollment(
    hub: VmHub, dev: VmDevice, proc: subprocess.Popen[bytes], log: Path, name: str, timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    signed = ""
    while proc.poll() is None:
        assert time.monotonic() < deadline, log.read_text()[-3000:]
        if "waiting for the operator to sign" in log.read_text() and not signed:
            sig = subprocess.run([*nsenter(hub.ns), str(ROOT / "pipelines" / "sign_pending_manifests"),
                                  "--host", hub.alias, "--yes"], cwd=ROOT, env=hub.env(),
                                 capture_output=True, text=True, timeout=600, check=False)  # fmt: skip
            if sig.returncode == 0 and name in sig.stderr:
                signed = sig.stderr
        time.sleep(3)
    out = proc.stdout.read().decode() if proc.stdout else ""
    assert proc.returncode == 0, out[-2000:] + log.read_text()[-4000:]
    dev.enrolled = json.loads(out[out.index("{") :])
    dev.enrolled["signed_by_operator"] = signed
    dev.start_agent()


def remove_device(dev: VmDevice) -> None:
    dev.stop_agent()
    # the interface first: wireguard-go exits when its TUN device is deleted (seen: it outlived a
    # namespace deleted under it), then the namespace
    subprocess.run(["ip", "-n", dev.ns, "link", "del", dev.interface], capture_output=True, check=False)
    sock = Path("/var/run/wireguard") / f"{dev.interface}.sock"
    deadline = time.monotonic() + 10
    while sock.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    subprocess.run(["ip", "netns", "del", dev.ns], capture_output=True, check=False)
    subprocess.run(["rm", "-rf", f"/etc/netns/{dev.ns}"], capture_output=True, check=False)
    shutil.rmtree(dev.state, ignore_errors=True)


KEEP_ENV = "MESHAGENTS_VMHUB_KEEP"


def _save_kept(hub: VmHub, keep: Path, vm_base: Path, provisioned: bool) -> None:
    data = {"vm": hub.vm.name, "vm_base": str(vm_base), "ns": hub.ns, "domain": hub.domain,
            "state": str(hub.state), "ssh_config": str(hub.ssh_config), "alias": hub.alias,
            "provision_s": hub.provision_s, "ca": str(hub.ca) if hub.ca else None,
            "provisioned": provisioned}  # fmt: skip
    (keep / "hub.json").write_text(json.dumps(data, indent=1) + "\n")


def _load_kept(keep: Path) -> VmHub:
    from meshagents.testbed.vm import machine

    d = json.loads((keep / "hub.json").read_text())
    vm = machine.Vm.load(d["vm"], Path(d["vm_base"]))
    hub = VmHub(vm=vm, ns=d["ns"], domain=d["domain"], state=Path(d["state"]),
                ssh_config=Path(d["ssh_config"]), alias=d["alias"], provision_s=d["provision_s"],
                ca=Path(d["ca"]) if d.get("ca") else None)  # fmt: skip
    if not d.get("provisioned"):  # the kept run failed half-way: finish it (a re-run)
        provision_first(hub, keep)
        _save_kept(hub, keep, Path(d["vm_base"]), True)
    hub.first_stderr = (keep / "provision-1.log").read_text()
    return hub


@pytest.fixture(scope="module")
def vm_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VmHub]:
    """A VM of its own (``vmhub<hex>``, qemu TCG), booted and provisioned once for the module
    and torn down at its end (qemu, namespaces, taps, disk). Its own, not the session's
    shared VM: provisioning changes the guest for good, and the module runs beside the rest
    of the suite in CI.

    For iterating on one test: ``MESHAGENTS_VMHUB_KEEP=/var/tmp/somedir`` keeps the VM, the
    namespace and the operator state there at the end (also when provisioning failed: the
    next run finishes it), and a later run with the same value re-uses them instead of
    booting and provisioning (``./fn vm down --stale`` does not touch it; remove it with
    ``./fn vm down --base DIR/vm NAME``)."""
    from meshagents.testbed.vm import machine
    from tests.testbed.vm import require_vm_tools

    require_vm_tools()
    keep_env = os.environ.get(KEEP_ENV)
    keep = Path(keep_env) if keep_env else None
    if keep is not None and (keep / "hub.json").exists():
        yield _load_kept(keep)
        return
    tag = secrets.token_hex(3)
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        work = keep
    else:
        work = tmp_path_factory.mktemp("vmhub")
    vm_base = Path(tempfile.mkdtemp(prefix="meshagents-vm-", dir="/var/tmp")) if keep is None else keep / "vm"
    name = f"vmhub{tag}"
    hub: VmHub | None = None
    try:
        vm = machine.up(name, base=vm_base, mem_mb=1536, smp=2, owner_pid=0 if keep else os.getpid())
        print(f"\nVM {name}: boot to sshd {vm.boot_seconds:.1f} s", flush=True)
        hub = open_vm_hub(vm, tag, work)
        if keep is not None:
            _save_kept(hub, keep, vm_base, False)
        provision_first(hub, work)
        if keep is not None:
            _save_kept(hub, keep, vm_base, True)
        yield hub
    finally:
        if keep is None:
            if hub is not None:
                close_vm_hub(hub)
            machine.down(name, base=vm_base)
            shutil.rmtree(vm_base, ignore_errors=True)


__all__ = [
    "ROOT", "VmDevice", "VmHub", "ask", "close_vm_hub", "enroll_device", "open_vm_hub", "prefetch",
    "provision_first", "remove_device", "ssl", "vm_hub",
]  # fmt: skip
