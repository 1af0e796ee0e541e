"""A minimal WireGuard hub for the Docker deep-mode tests and ``bench_docker``.

Built with raw commands (a namespace, a veth pair into the engine's namespace,
wireguard-go and ``wg set``), independent of the mesh layer's own code, so a test
checks our side against plain WireGuard tools. Nothing touches the root namespace.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from meshagents.docker import uapi
from tests.testbed.docker_engine import DockerEngine


def sh(*cmd: str) -> str:
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


@dataclass
class Hub:
    netns: str
    iface: str
    public_key: str
    endpoint: str
    proc: subprocess.Popen[bytes]

    def add_peer(self, public_key: str, address: str) -> None:
        sh("wg", "set", self.iface, "peer", public_key, "allowed-ips", f"{address}/32")

    def peer(self, public_key: str) -> dict[str, str]:
        """The hub's view of one peer, from `wg show <iface> dump`."""
        for line in sh("wg", "show", self.iface, "dump").splitlines()[1:]:
            f = line.split("\t")
            if f[0] == public_key:
                return {"endpoint": f[2], "allowed_ips": f[3], "latest_handshake": f[4], "rx": f[5]}
        return {}


@contextlib.contextmanager
def minimal_hub(eng: DockerEngine) -> Iterator[Hub]:
    """A hub namespace linked by veth to the engine's namespace (never to the root one)."""
    sfx = secrets.token_hex(3)
    netns, iface, vh, vd = f"dkhub-{sfx}", f"dkh{sfx}", f"dkv{sfx}", f"dkw{sfx}"
    n = int(sfx[:2], 16)
    hub_ip, host_ip = f"198.19.{n}.1", f"198.19.{n}.2"
    sh("ip", "netns", "add", netns)
    proc: subprocess.Popen[bytes] | None = None
    keydir = Path(tempfile.mkdtemp(prefix="hubkey-"))
    try:
        sh("ip", "-n", netns, "link", "set", "lo", "up")
        # Created straight inside the two test namespaces: the root namespace never sees it.
        sh("ip", "link", "add", vh, "netns", netns, "type", "veth", "peer", "name", vd, "netns", eng.netns)
        sh("ip", "-n", netns, "addr", "add", f"{hub_ip}/30", "dev", vh)
        sh("ip", "-n", eng.netns, "addr", "add", f"{host_ip}/30", "dev", vd)
        sh("ip", "-n", netns, "link", "set", vh, "up")
        sh("ip", "-n", eng.netns, "link", "set", vd, "up")
        env = dict(os.environ, WG_PROCESS_FOREGROUND="1")
        proc = subprocess.Popen(
            ["nsenter", f"--net=/run/netns/{netns}", "wireguard-go", "-f", iface],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 5
        while not uapi.socket_path(iface).exists():
            assert time.monotonic() < deadline, "hub wireguard-go did not start"
            time.sleep(0.005)
        private = sh("wg", "genkey").strip()
        (keydir / "k").write_text(private)
        os.chmod(keydir / "k", 0o600)
        public = subprocess.run(
            ["wg", "pubkey"], input=private, capture_output=True, text=True
        ).stdout.strip()
        sh("wg", "set", iface, "private-key", str(keydir / "k"), "listen-port", "51820")
        sh("ip", "-n", netns, "addr", "add", "10.42.0.1/24", "dev", iface)
        sh("ip", "-n", netns, "link", "set", iface, "up")
        yield Hub(netns, iface, public, f"{hub_ip}:51820", proc)
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        subprocess.run(["ip", "-n", eng.netns, "link", "del", vd], capture_output=True)
        subprocess.run(["ip", "netns", "delete", netns], capture_output=True)
        for f in keydir.iterdir():
            f.unlink()
        keydir.rmdir()
