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
import ssl
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.testbed.host import ROOT

FLAGS = ("--tls", "internal", "--endpoint")


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


@pytest.fixture(scope="module")
def vm_hub(vm: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[VmHub]:
    """The session's VM (tests/testbed/vm.py) provisioned once as the hub. This changes the
    guest for good (users, units, a firewall that keeps SSH, ICMP and the hub's ports open):
    the VM stays usable for the session's other tests."""
    tag = secrets.token_hex(3)
    ns = f"hpop{tag}"
    hosts_dir = Path("/etc/netns") / ns
    try:
        subprocess.run(["ip", "netns", "add", ns], check=True)
        vm.attach(ns)
        work = tmp_path_factory.mktemp("vmhub")
        state = work / "operator-state"
        state.mkdir(mode=0o700)
        cfg = work / "ssh_config"
        _ssh_config_for_segment(vm, cfg)
        domain = f"hub-{tag}.test"
        hosts_dir.mkdir(parents=True, exist_ok=True)
        (hosts_dir / "hosts").write_text(f"127.0.0.1 localhost\n{vm.public_ip} {domain}\n")
        hub = VmHub(vm=vm, ns=ns, domain=domain, state=state, ssh_config=cfg, alias=vm.ssh_alias)
        prefetch(vm)
        t0 = time.monotonic()
        proc = hub.provision()
        hub.provision_s = time.monotonic() - t0
        hub.first_stderr = proc.stderr
        (work / "provision-1.log").write_text(proc.stderr)
        assert proc.returncode == 0, proc.stderr[-6000:]
        print(f"\nprovision from a fresh VM: {hub.provision_s:.1f} s", flush=True)
        ca = work / "caddy-root.crt"
        ca.write_text(vm.ssh("cat /var/lib/caddy/.local/share/caddy/pki/authorities/local/root.crt").stdout)
        hub.ca = ca
        yield hub
    finally:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        subprocess.run(["rm", "-rf", str(hosts_dir)], capture_output=True)


__all__ = ["VmHub", "prefetch", "ssl", "vm_hub"]
