"""A real hub rig: the WireGuard hub in a namespace, the wg_hub service in it, devices and "the internet".

    rig = hub_rig                      # package-scoped: one hub for this folder's tests
    rig.mesh                           # tests.testbed.mesh.Mesh (hub only; devices are enrolled)
    rig.public_url                     # http://198.19.99.1:8443  (the hub's "public" address)
    rig.operator("GET", "/api/peers")  # httpx.Response from inside the hub namespace (loopback)
    rig.token(name, ttl_s=600, profile="minimal") -> str
    rig.new_device() -> DeviceNs       # a namespace with an underlay link and its own FN_STATE_DIR
    rig.enroll(dev, token) -> CompletedProcess   # pipelines/enroll_device inside dev's namespace
    rig.internet                       # a namespace linked to the hub's public side only
    in_netns(ns, fn, *args)            # run fn in a thread that entered ns (setns is per thread)

Topology (inside test namespaces only; the root namespace gets nothing): the hub has
its public address 198.19.99.1 on a link to the internet namespace (198.19.99.2);
each device i has a link 198.19.<i>.1 (hub) / .2 (device) and a default route via the
hub, so it reaches the public address like a device on the internet would. The mesh is
10.42.0.0/24. The hub service runs as ``nsenter --net=<hub ns> python -m meshagents.apps.wg_hub``
with the test's FN_STATE_DIR; each device runs the pipeline with its own FN_STATE_DIR.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from tests.testbed.host import ROOT
from tests.testbed.mesh import NETNS_DIR, Mesh, require_mesh_tools

__all__ = ["NETNS_DIR", "DeviceNs", "HubRig", "hub_rig_cm", "in_netns", "nsenter"]

PUBLIC = "198.19.99.1"
PUBLIC_PORT = 8443
OPERATOR_PORT = 8000
CLONE_NEWNET = 0x40000000
T = TypeVar("T")

_libc = ctypes.CDLL(None, use_errno=True)


def _enter(ns: str) -> None:
    fd = os.open(NETNS_DIR / ns, os.O_RDONLY)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns {ns}")
    finally:
        os.close(fd)


def in_netns(ns: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run ``fn`` in a fresh thread that entered network namespace ``ns`` (the test thread stays put)."""
    with ThreadPoolExecutor(1, initializer=_enter, initargs=(ns,)) as pool:
        return pool.submit(fn, *args, **kwargs).result()


@dataclass
class DeviceNs:
    name: str
    netns: str
    interface: str
    state: Path
    config_dir: Path
    index: int


@dataclass
class HubRig:
    mesh: Mesh
    workdir: Path
    state: Path
    internet: str
    api_token: str = ""
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path = Path()
    devices: list[DeviceNs] = field(default_factory=list)
    manifest_key: str = "operator/ed25519"
    #: Devices' state lives outside /tmp: profiles grant /tmp, and a device agent refuses a
    #: manifest whose prefixes cover its own state (manifest_covers_agent_state).
    device_root: Path = field(
        default_factory=lambda: Path(tempfile.mkdtemp(prefix="hubdev-", dir="/var/tmp"))
    )

    @property
    def public_url(self) -> str:
        return f"http://{PUBLIC}:{PUBLIC_PORT}"

    @property
    def hub_ns(self) -> str:
        return self.mesh.hub.netns

    def env(self, state: Path) -> dict[str, str]:
        env = dict(os.environ)
        env["FN_STATE_DIR"] = str(state)
        env.pop("FN_HOST", None)
        return env

    # the service -----------------------------------------------------------------------------
    def start(
        self, *, manifest_key: str = "operator/ed25519", events_period_s: float = 0.5, signing: str = "hub"
    ) -> None:
        cfg = self.workdir / "wg_hub.toml"
        cfg.write_text(
            "\n".join(
                [
                    f'interface = "{self.mesh.hub.interface}"',
                    f'config_dir = "{self.mesh.hub.config_dir}"',
                    f'netns = "{self.hub_ns}"',
                    f'public_host = "{PUBLIC}"',
                    f"public_port = {PUBLIC_PORT}",
                    f"operator_port = {OPERATOR_PORT}",
                    f'endpoint = "{PUBLIC}:{self.mesh.listen_port}"',
                    f'manifest_key = "{manifest_key}"',
                    f'manifest_signing = "{signing}"',
                    f"events_period_s = {events_period_s}",
                    'approvers = ["@operator:hub.test"]',
                ]
            )
            + "\n"
        )
        self.log_path = self.workdir / f"wg_hub-{len(list(self.workdir.glob('wg_hub-*.log')))}.log"
        log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [
                "nsenter",
                f"--net={NETNS_DIR / self.hub_ns}",
                sys.executable,
                "-m",
                "meshagents.apps.wg_hub",
                "--config",
                str(cfg),
            ],
            cwd=ROOT,
            env=self.env(self.state),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"wg_hub exited {self.proc.returncode}: {self.log_path.read_text()}")
            try:
                if self.get("/healthz").status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"wg_hub did not come up: {self.log_path.read_text()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def log_text(self) -> str:
        return "".join(p.read_text(errors="replace") for p in sorted(self.workdir.glob("wg_hub-*.log")))

    # HTTP from inside the hub namespace ----------------------------------------------------------
    def get(self, path: str) -> httpx.Response:
        return in_netns(self.hub_ns, httpx.get, f"http://127.0.0.1:{OPERATOR_PORT}{path}", timeout=5)

    def operator(self, method: str, path: str, *, auth: bool = True, **kw: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.api_token}"} if auth else {}
        url = f"http://127.0.0.1:{OPERATOR_PORT}{path}"
        return in_netns(self.hub_ns, httpx.request, method, url, headers=headers, timeout=15, **kw)

    def public(self, method: str, path: str, ns: str | None = None, **kw: Any) -> httpx.Response:
        url = f"{self.public_url}{path}"
        return in_netns(ns or self.internet, httpx.request, method, url, timeout=15, **kw)

    def token(self, name: str, *, ttl_s: int = 600, profile: str = "minimal") -> str:
        resp = self.operator(
            "POST", "/api/tokens", json={"device_name": name, "ttl_s": ttl_s, "profile": profile}
        )
        assert resp.status_code == 200, resp.text
        return str(resp.json()["token"])

    # devices ---------------------------------------------------------------------------------
    def new_device(self) -> DeviceNs:
        i = len(self.devices) + 1
        s = self.mesh.suffix
        dev = DeviceNs(
            name=f"d{i}-{s}",
            netns=f"md{s}{i}",
            interface=f"wd{s}{i}",
            state=self.device_root / f"dev{i}-state",
            config_dir=self.workdir / f"dev{i}-wg",
            index=i,
        )
        dev.state.mkdir(mode=0o700)
        self.mesh._netns(dev.netns)
        self.mesh._interfaces.append((dev.netns, dev.interface))
        link(self.mesh, self.hub_ns, dev.netns, f"mv{s}h{i}", f"mv{s}d{i}", f"198.19.{i}.1", f"198.19.{i}.2")
        self.mesh.run(dev.netns, ["ip", "route", "add", "default", "via", f"198.19.{i}.1"], check=True)
        self.devices.append(dev)
        return dev

    def enroll(self, dev: DeviceNs, token: str, *extra: str) -> subprocess.CompletedProcess[str]:
        argv = [
            *nsenter(dev.netns), str(ROOT / "pipelines" / "enroll_device"),
            "--token", token, "--hub", self.public_url, "--interface", dev.interface,
            "--config-dir", str(dev.config_dir), "--no-systemd", *extra,
        ]  # fmt: skip
        return subprocess.run(
            argv, cwd=ROOT, env=self.env(dev.state), capture_output=True, text=True, timeout=120
        )

    def device_has_interface(self, dev: DeviceNs) -> bool:
        return self.mesh.run(dev.netns, ["ip", "link", "show", dev.interface]).returncode == 0


def nsenter(ns: str) -> list[str]:
    return ["nsenter", f"--net={NETNS_DIR / ns}"]


def link(mesh: Mesh, ns_a: str, ns_b: str, va: str, vb: str, addr_a: str, addr_b: str) -> None:
    subprocess.run(
        ["ip", "link", "add", va, "netns", ns_a, "type", "veth", "peer", "name", vb, "netns", ns_b],
        check=True,
        capture_output=True,
    )
    mesh.run(ns_a, ["ip", "addr", "add", f"{addr_a}/24", "dev", va], check=True)
    mesh.run(ns_a, ["ip", "link", "set", va, "up"], check=True)
    mesh.run(ns_b, ["ip", "addr", "add", f"{addr_b}/24", "dev", vb], check=True)
    mesh.run(ns_b, ["ip", "link", "set", vb, "up"], check=True)


@contextlib.contextmanager
def hub_rig_cm(
    workdir: Path, state: Path, *, manifest_key: str = "operator/ed25519", signing: str = "hub"
) -> Iterator[HubRig]:
    from meshagents.runtime.api import call

    require_mesh_tools()
    os.environ["FN_STATE_DIR"] = str(state)
    with Mesh(devices=0, workdir=workdir / "mesh", service_ports=[OPERATOR_PORT, 8008, 8080]) as mesh:
        s = mesh.suffix
        internet = f"mi{s}"
        mesh._netns(internet)
        link(mesh, mesh.hub.netns, internet, f"mv{s}hi", f"mv{s}ii", PUBLIC, "198.19.99.2")
        mesh.run(internet, ["ip", "route", "add", "default", "via", PUBLIC], check=True)
        call("operator_key_init", caller="tests.hub")
        call("controller_key_init", caller="tests.hub")
        if manifest_key != "operator/ed25519":  # a hub that signs with a key that is not the operator's
            from meshagents.trust.keystore import init_signing_key

            init_signing_key(manifest_key)
        rig = HubRig(mesh=mesh, workdir=workdir, state=state, internet=internet)
        try:
            rig.start(manifest_key=manifest_key, signing=signing)
            rig.manifest_key = manifest_key
            rig.api_token = subprocess.run(
                [sys.executable, "-m", "meshagents.apps.wg_hub", "--show-api-token"],
                cwd=ROOT,
                env=rig.env(state),
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
            yield rig
        finally:
            rig.stop()
            shutil.rmtree(rig.device_root, ignore_errors=True)


@pytest.fixture(scope="package")
def hub_rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubRig]:
    workdir = tmp_path_factory.mktemp(f"hub{secrets.token_hex(2)}")
    state = workdir / "hub-state"
    state.mkdir(mode=0o700)
    old = os.environ.get("FN_STATE_DIR")
    try:
        with hub_rig_cm(workdir, state) as rig:
            yield rig
    finally:
        if old is None:
            os.environ.pop("FN_STATE_DIR", None)
        else:
            os.environ["FN_STATE_DIR"] = old
