"""The whole system on one machine, every part real: the rig behind ``./fn demo`` and the e2e tests.

    from meshagents.testbed.rig import Rig

    with Rig.up(devices=("home-wsl", "pc-aurgi"), docker=True, workdir=None) as rig:
        rig.homeserver_url        # http://127.0.0.1:<port>  (loopback forward into the hub ns)
        rig.operator_user, rig.operator_password, rig.server_name, rig.bot_user
        rig.recovery_key          # the operator's recovery key (secret storage, key backup)
        rig.rooms                 # {"home-wsl": "#dev-home-wsl:hub.mesh", ...,
                                  #  "approvals": "#operator-approvals:hub.mesh"}
        rig.hub_api_url, rig.api_token, rig.dashboard_url, rig.bot_api_url
        rig.devices["home-wsl"]   # RigDevice: .netns .state_dir .config_path .address .matrix_user
        rig.agent("home-wsl")     # its process (procs.Child: .pid .alive() .log)
        rig.hub_state, rig.hub_netns, rig.workdir, rig.docker_host, rig.container
        rig.restart_agent("home-wsl"); rig.kill_agent("home-wsl", signal.SIGKILL); rig.start_agent(...)
        rig.hub_interface_down(); rig.hub_interface_up()
        rig.restart_hub(); rig.restart_bot()
        netns, wg = rig.underlay_netns(40)   # a spare device namespace, for a test's own enrollment
        # ./fn run in a part's state dir, JSON result:
        rig.fn("device_audit_verify_chain", "--device", "home-wsl", device="home-wsl")
        op = rig.operator_client("e2e")   # an Operator (meshagents.testbed.rig.operator), not started
        # async: await op.start(); reply = await op.command("home-wsl", "!exec ls /tmp"); await op.stop()

Start order (each step waits for the one before to answer): namespaces and the hub's
underlay bridge; the WireGuard hub (``wg_hub_setup`` in the hub namespace); the operator
and controller keys; Synapse in the hub namespace on 10.42.0.1:8008; the loopback
forwards from the root namespace; the bot and operator Matrix accounts; the hub
service (``fn app wg_hub``, enrolling devices into Matrix too); the bot; the
dashboard; the Docker engine (own namespace) with a demo container; then each device:
namespace and underlay link, a token from the hub API, ``pipelines/enroll_device`` in
its namespace with its own state dir, the agent config, the agent; finally the
operator joins the rooms and the rig waits until every agent is in its room and in
#operator-approvals, and the operator's recovery key is made (secret storage with the
cross-signing seeds and a key backup, meshagents.matrix.recovery). Teardown runs
whatever happened, in reverse: processes (by process group), Docker, WireGuard
interfaces, namespaces, the work directory (unless one was given). Nothing in the
root namespace but 127.0.0.1 listening sockets.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from meshagents.errors import FnError
from meshagents.fsutil import write_atomic
from meshagents.state import project_root
from meshagents.testbed.rig import config as cfg
from meshagents.testbed.rig.docker import DockerRig
from meshagents.testbed.rig.installed import hide_checkout, installed_env, pipeline
from meshagents.testbed.rig.names import (
    HUB_MESH,
    HUB_UNDERLAY,
    MESH_CIDR,
    UNDERLAY_PREFIX,
    RunNames,
    check_device_name,
)
from meshagents.testbed.rig.netns import Namespaces, nsenter
from meshagents.testbed.rig.operator import Operator, OperatorLogin
from meshagents.testbed.rig.procs import Child, Processes
from meshagents.testbed.rig.runs import RunRecord

REQUIRED_BINARIES = ("wireguard-go", "wg", "ip", "nsenter", "nft", "git", "bwrap")
Log = Callable[[str], None]


@dataclass
class RigDevice:
    name: str
    index: int
    netns: str
    interface: str
    state_dir: Path
    config_path: Path = Path()
    address: str = ""
    device_id: str = ""
    matrix_user: str = ""
    room_alias: str = ""
    enrollment: dict[str, Any] = field(default_factory=dict)

    @property
    def process_name(self) -> str:
        return f"agent-{self.name}"


def _free_listener() -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    s.listen(128)
    return s


class Rig:
    """See the module docstring. Build it with ``Rig.up(...)``."""

    def __init__(
        self, devices: tuple[str, ...], docker: bool, workdir: Path | None, log: Log | None = None,
        device_venv: Path | None = None, bot_settings: dict[str, float] | None = None,
    ) -> None:
        if os.geteuid() != 0:
            raise FnError("needs_root", "the rig needs root (network namespaces, WireGuard, dockerd)")
        missing = [b for b in REQUIRED_BINARIES if shutil.which(b) is None]
        if missing:
            raise FnError("missing_binary", f"missing {', '.join(missing)} (./fn demo installs them)")
        self.names = RunNames.new()
        self.device_names = tuple(check_device_name(d) for d in devices)
        if len(set(self.device_names)) != len(self.device_names):
            raise FnError("bad_device_name", "device names must differ")
        self.want_docker = docker
        #: extra bot.toml settings (numbers), e.g. a load bench's per-sender command limit;
        #: applied by the next _bot() (restart_bot)
        self.bot_settings: dict[str, float] = dict(bot_settings or {})
        self._own_workdir = workdir is None
        # Not under /tmp: the workstation profile grants /tmp, and a device agent refuses a
        # manifest whose prefixes cover its own state (manifest_covers_agent_state).
        base = "/var/tmp" if os.path.isdir("/var/tmp") else None
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix=f"rig-{self.names.suffix}-", dir=base))
        self.workdir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.log_dir = self.workdir / "logs"
        self.log_dir.mkdir(exist_ok=True)
        self.hub_state = self.workdir / "hub-state"
        self.hub_state.mkdir(exist_ok=True, mode=0o700)
        self.root = project_root()
        # devices enroll and run their agent from this venv (the wheel installed), the checkout hidden
        self.device_venv = device_venv
        self.log: Log = log or (lambda _msg: None)
        self.namespaces = Namespaces()
        self.record: RunRecord | None = None
        self.procs = Processes(self.log_dir, on_start=self._recorded)
        self.docker: DockerRig | None = None
        self.devices: dict[str, RigDevice] = {}
        self.server_name = cfg.SERVER_NAME
        self.bot_user = f"@bot:{self.server_name}"
        self.operator_user = f"@operator:{self.server_name}"
        self.operator_password = secrets.token_urlsafe(18)
        self.api_token = ""
        self.recovery_key = ""
        self.operator_public_key = ""
        self.ports: dict[str, int] = {}
        self.timings: dict[str, float] = {}
        self._hub_wg_made = False

    # --- public addresses (root namespace, loopback forwards) ---------------------------------
    @property
    def homeserver_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['synapse']}"

    @property
    def dashboard_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['dashboard']}"

    @property
    def hub_api_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['hub']}"

    @property
    def bot_api_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['bot']}"

    @property
    def hub_netns(self) -> str:
        return self.names.hub_ns

    @property
    def hub_interface(self) -> str:
        return self.names.hub_wg

    @property
    def rooms(self) -> dict[str, str]:
        out = {d: cfg.device_alias(d, self.server_name) for d in self.device_names}
        out["approvals"] = cfg.room_alias(cfg.APPROVALS_ALIAS, self.server_name)
        return out

    @property
    def docker_host(self) -> str | None:
        return self.docker.docker_host if self.docker else None

    @property
    def container(self) -> str | None:
        return self.docker.container if self.docker else None

    @property
    def operator_store_root(self) -> Path:
        return self.workdir / "operator"

    @property
    def manifests_dir(self) -> Path:
        return self.hub_state / "agents_and_robots" / "manifests"

    @property
    def cross_signing_path(self) -> Path:
        return self.operator_store_root / "cross_signing.json"

    # --- lifecycle ------------------------------------------------------------------------------
    @classmethod
    @contextlib.contextmanager
    def up(
        cls,
        devices: tuple[str, ...] = ("home-wsl", "pc-aurgi"),
        docker: bool = True,
        workdir: Path | None = None,
        log: Log | None = None,
        device_venv: Path | None = None,
        bot_settings: dict[str, float] | None = None,
    ) -> Iterator[Rig]:
        """Start everything; yield the running rig; tear everything down (also on errors and Ctrl-C).
        ``device_venv``: the devices run from that installed copy, not from the checkout;
        ``bot_settings``: extra bot.toml numbers from the start (e.g. benchkit.SCRIPTED_OPERATOR)."""
        rig = cls(tuple(devices), docker, workdir, log, device_venv, bot_settings)
        try:
            rig.start()
            yield rig
        finally:
            rig.close()

    def _steps_total(self) -> int:
        # the start() sequence below: 9 fixed steps, Docker, and two per device
        return 9 + int(self.want_docker) + 2 * len(self.device_names)

    def _step(self, what: str, fn: Callable[[], Any]) -> Any:
        n = len(self.timings) + 1
        where = f"[{n}/{self._steps_total()}]"
        self.log(f"rig: {where} {what} ...")
        t0 = time.perf_counter()
        out = fn()
        self.timings[what] = time.perf_counter() - t0
        self.log(f"rig: {where} {what}: {self.timings[what]:.1f} s")
        return out

    def _recorded(self, name: str, pid: int, argv: list[str]) -> None:
        if self.record is not None:
            self.record.child(name, pid, argv)

    def start(self) -> None:
        self.log(f"rig: run {self.names.suffix}, work dir {self.workdir}")
        # what `./fn demo --cleanup` needs should this process die by SIGKILL
        self.record = RunRecord(self.names.suffix, self.workdir, own_workdir=self._own_workdir)
        self._step("namespaces and underlay", self._net)
        self._step("WireGuard hub", self._wg_hub)
        self._step("operator and controller keys", self._keys)
        self._step("Synapse in the hub namespace", self._synapse)
        self._step("Matrix accounts (bot, operator)", self._accounts)
        self._step("hub service (wg_hub)", self._hub)
        if self.want_docker:
            self._step("Docker engine and demo container", self._docker)
        for i, name in enumerate(self.device_names, start=1):
            self._step(f"device {name}: enroll", lambda i=i, name=name: self._enroll(i, name))  # type: ignore[misc]
        # The bot starts after enrollment: the hub adds a device's WireGuard peer before it
        # creates the device's Matrix room, and a bot that looks in between waits 30 s
        # (its negative cache) before it looks for that room again.
        self._step("bot (agents_and_robots)", self._bot)
        self._step("dashboard (agents_dashboard)", self._dashboard)
        for name in self.device_names:
            self._step(f"device {name}: agent", lambda name=name: self.start_agent(name))  # type: ignore[misc]
        self._step("operator joins; agents in their rooms", lambda: asyncio.run(self._settle()))
        self._step("operator recovery key (secret storage, key backup)", self._recovery)

    def close(self) -> None:
        """Stop everything this rig started; never raises (a teardown must finish)."""
        self.log("rig: tearing down ...")
        with contextlib.suppress(Exception):
            self.procs.close()
        if self.docker is not None:
            with contextlib.suppress(Exception):
                self.docker.stop()
        for dev in self.devices.values():
            with contextlib.suppress(Exception):
                self.namespaces.delete_link(dev.netns, dev.interface)
        if self._hub_wg_made:
            with contextlib.suppress(Exception):
                self.namespaces.delete_link(self.hub_netns, self.hub_interface)
        left = self.namespaces.close()
        ifaces = [self.hub_interface, *(d.interface for d in self.devices.values())]
        for ifname in ifaces:
            with contextlib.suppress(FileNotFoundError):
                (Path("/var/run/wireguard") / f"{ifname}.sock").unlink()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
        if left:
            self.log(f"rig: WARNING namespaces left behind: {', '.join(left)}")
        elif self.record is not None:
            self.record.remove()

    # --- helpers --------------------------------------------------------------------------------
    def env(self, state: Path | None = None) -> dict[str, str]:
        env = dict(os.environ)
        env["FN_STATE_DIR"] = str(state or self.hub_state)
        env["FN_PROJECT_ROOT"] = str(self.root)
        env["PYTHONUNBUFFERED"] = "1"
        for key in ("FN_HOST", "FN_MATRIX_SETTINGS", "FN_KEYSTORE"):
            env.pop(key, None)
        return env

    def fn(self, function_id: str, *args: str, device: str | None = None, netns: str | None = None) -> Any:
        """``./fn run FUNCTION_ID ARGS`` with the hub's state (or ``device``'s), parsed JSON result."""
        state = self.devices[device].state_dir if device else self.hub_state
        argv = [sys.executable, "-m", "meshagents.runtime.cli", "run", function_id, *args]
        if netns:
            argv = [*nsenter(netns), *argv]
        proc = subprocess.run(
            argv, cwd=self.root, env=self.env(state), capture_output=True, text=True, timeout=120, check=False
        )
        if proc.returncode != 0:
            raise FnError("rig_step_failed", f"fn run {function_id}: {proc.stderr.strip()[-1500:]}")
        return json.loads(proc.stdout) if proc.stdout.strip() else None

    def _app(
        self, name: str, app: str, *args: str, state: Path | None = None, netns: str | None = None
    ) -> Child:
        return self.procs.start(
            name,
            [sys.executable, "-m", f"meshagents.apps.{app}", *args],
            env={**self.env(state), "FN_CALLER": app},
            netns=netns or self.hub_netns,
            cwd=self.root,
        )

    def _wait_http(
        self,
        what: str,
        url: str,
        child: Child | None,
        *,
        headers: dict[str, str] | None = None,
        timeout: float = 60.0,
        ok: Callable[[httpx.Response], bool] | None = None,
    ) -> None:
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            if child is not None and not child.alive():
                raise FnError("rig_start_failed", f"{what} exited ({child.proc.returncode}): {child.tail()}")
            try:
                r = httpx.get(url, headers=headers, timeout=3)
                if (ok or (lambda resp: resp.status_code < 500))(r):
                    return
                last = f"HTTP {r.status_code}"
            except httpx.HTTPError as exc:
                last = str(exc)
            time.sleep(0.2)
        tail = child.tail() if child else ""
        raise FnError("rig_start_failed", f"{what} did not answer at {url} ({last}): {tail}")

    def _bearer(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_token}"}

    # --- steps ----------------------------------------------------------------------------------
    def _net(self) -> None:
        hub = self.hub_netns
        self.namespaces.add(hub)
        br = self.names.bridge
        self.namespaces.run(hub, ["ip", "link", "add", br, "type", "bridge"])
        self.namespaces.run(hub, ["ip", "addr", "add", f"{HUB_UNDERLAY}/{UNDERLAY_PREFIX}", "dev", br])
        self.namespaces.run(hub, ["ip", "link", "set", br, "up"])

    def _wg_hub(self) -> None:
        self._hub_wg_made = True
        self.fn(
            "wg_hub_setup",
            "--interface", self.hub_interface, "--netns", self.hub_netns,
            "--config-dir", str(self.workdir / "hub-wg"), "--address", MESH_CIDR,
            "--listen-port", str(cfg.WG_PORT), "--endpoint", f"{HUB_UNDERLAY}:{cfg.WG_PORT}",
            "--service-ports", str(cfg.HUB_API_PORT), "--service-ports", str(cfg.SYNAPSE_PORT),
            "--service-ports", str(cfg.DASHBOARD_PORT), "--service-ports", str(cfg.BOT_API_PORT),
        )  # fmt: skip

    def _keys(self) -> None:
        self.operator_public_key = str(self.fn("operator_key_init")["public_key"])
        self.fn("controller_key_init")
        proc = subprocess.run(
            [sys.executable, "-m", "meshagents.apps.wg_hub", "--show-api-token"],
            cwd=self.root, env=self.env(), capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        if proc.returncode != 0 or not proc.stdout.strip():
            raise FnError("rig_step_failed", f"wg_hub --show-api-token: {proc.stderr.strip()[-800:]}")
        self.api_token = proc.stdout.strip()

    def _synapse(self) -> None:
        from meshagents.matrix.homeserver import EmbeddedSynapse, synapse_argv

        self.synapse = EmbeddedSynapse(
            self.workdir / "synapse", host=HUB_MESH, port=cfg.SYNAPSE_PORT, server_name=self.server_name
        )
        conf = self.synapse.write_config()
        self._forwards()
        # The URL Synapse hands out (the login answer's well_known): the one the operator's
        # client can reach from the root namespace, not the mesh address it listens on.
        import yaml

        data = yaml.safe_load(conf.read_text(encoding="utf-8"))
        data["public_baseurl"] = self.homeserver_url + "/"
        _write_private(conf, yaml.safe_dump(data, sort_keys=True))
        child = self.procs.start(
            "synapse",
            synapse_argv(conf),
            env=self.env(),
            netns=self.hub_netns,
            cwd=self.synapse.data_dir,
        )
        self._wait_http(
            "synapse", self.homeserver_url + "/_matrix/client/versions", child, timeout=90,
            ok=lambda r: r.status_code == 200,
        )  # fmt: skip

    def _forwards(self) -> None:
        targets = {
            "synapse": f"{HUB_MESH}:{cfg.SYNAPSE_PORT}",
            "hub": f"127.0.0.1:{cfg.HUB_API_PORT}",
            "dashboard": f"127.0.0.1:{cfg.DASHBOARD_PORT}",
            "bot": f"127.0.0.1:{cfg.BOT_API_PORT}",
        }
        socks = {k: _free_listener() for k in targets}
        try:
            self.ports = {k: s.getsockname()[1] for k, s in socks.items()}
            args: list[str] = []
            for k, s in socks.items():
                args += ["--listen", f"{s.fileno()}={targets[k]}"]
            self.procs.start(
                "forward",
                [sys.executable, "-m", "meshagents.testbed.rig.forward", *args],
                env=self.env(),
                netns=self.hub_netns,
                cwd=self.root,
                pass_fds=tuple(s.fileno() for s in socks.values()),
            )
        finally:
            for s in socks.values():
                s.close()  # the forwarder holds its own copies

    def _accounts(self) -> None:
        from meshagents.matrix.admin import register_user
        from meshagents.matrix.settings import Credentials

        secret = self.synapse.shared_secret
        bot_password = secrets.token_urlsafe(18)
        register_user(self.homeserver_url, secret, "bot", bot_password)
        register_user(self.homeserver_url, secret, "operator", self.operator_password)
        matrix = self.hub_state / "matrix"
        matrix.mkdir(mode=0o700, exist_ok=True)
        secret_file = matrix / "registration_secret"
        _write_private(secret_file, secret + "\n")
        _write_private(
            matrix / "settings.toml",
            cfg.matrix_settings_toml(
                operators=[self.operator_user], bot=self.bot_user, secret_file=str(secret_file),
                server_name=self.server_name,
            ),
        )  # fmt: skip
        Credentials(cfg.homeserver_url(), self.bot_user, bot_password).save(
            matrix / "accounts" / "bot" / "credentials.json"
        )
        self.operator_store_root.mkdir(mode=0o700, exist_ok=True)
        self.manifests_dir.mkdir(parents=True, mode=0o700, exist_ok=True)

    def _hub(self) -> None:
        profiles = self.workdir / "profiles"
        profiles.mkdir(exist_ok=True)
        shipped = self.root / "meshagents" / "apps" / "wg_hub" / "profiles"
        for p in shipped.glob("*.json"):
            shutil.copy(p, profiles / p.name)
        workstation = json.loads((shipped / "workstation.json").read_text(encoding="utf-8"))
        (profiles / "demo.json").write_text(json.dumps(cfg.demo_profile(workstation), indent=2) + "\n")
        conf = self.workdir / "wg_hub.toml"
        conf.write_text(
            cfg.hub_toml(
                cfg.HubSettings(
                    interface=self.hub_interface, config_dir=str(self.workdir / "hub-wg"),
                    netns=self.hub_netns, approvers=(self.operator_user,), profiles_dir=str(profiles),
                    state_dir=str(self.hub_state / "wg_hub"), server_name=self.server_name,
                )
            )
        )  # fmt: skip
        child = self._app("wg_hub", "wg_hub", "--config", str(conf))
        self._wait_http("wg_hub", self.hub_api_url + "/healthz", child, ok=lambda r: r.status_code == 200)

    def _bot(self) -> None:
        conf = self.hub_state / "agents_and_robots" / "bot.toml"
        conf.parent.mkdir(mode=0o700, exist_ok=True)
        extra = "".join(f"{k} = {v!r}\n" for k, v in sorted(self.bot_settings.items()))
        conf.write_text(cfg.bot_toml(manifests_dir=str(self.manifests_dir)) + extra)
        child = self._app("bot", "agents_and_robots", "--config", str(conf))
        self._wait_http(
            "bot", self.bot_api_url + "/healthz", child, headers=self._bearer(), timeout=90,
            ok=lambda r: r.status_code == 200 and r.json().get("state") == "ok",
        )  # fmt: skip

    def _dashboard(self) -> None:
        child = self._app(
            "dashboard", "agents_dashboard",
            "--hub-api", f"http://127.0.0.1:{cfg.HUB_API_PORT}", "--bot-api", f"http://127.0.0.1:{cfg.BOT_API_PORT}",
            "--host", HUB_MESH, "--host", "127.0.0.1", "--port", str(cfg.DASHBOARD_PORT),
            "--stale-after-s", "60",
        )  # fmt: skip
        self._wait_http("dashboard", self.dashboard_url + "/", child)

    def _docker(self) -> None:
        # short path: containerd's socket paths must stay under 108 bytes
        self.docker = DockerRig(
            self.names, Path(f"/tmp/mrk-{self.names.suffix}"), self.procs, self.namespaces
        )
        self.docker.start()

    def underlay_netns(self, index: int) -> tuple[str, str]:
        """A device namespace (``names.device(index)``) linked to the hub's underlay bridge:
        (netns, the WireGuard interface name to give ``enroll_device``). For enrollments a
        test runs itself, with an index above the rig's devices; deleted at teardown."""
        n = self.names.device(index)
        self.namespaces.add(n.ns)
        subprocess.run(
            ["ip", "link", "add", n.veth_hub, "netns", self.hub_netns, "type", "veth",
             "peer", "name", n.veth_dev, "netns", n.ns],
            check=True, capture_output=True,
        )  # fmt: skip
        self.namespaces.run(
            self.hub_netns, ["ip", "link", "set", n.veth_hub, "master", self.names.bridge, "up"]
        )
        self.namespaces.run(n.ns, ["ip", "addr", "add", f"{n.underlay}/{UNDERLAY_PREFIX}", "dev", n.veth_dev])
        self.namespaces.run(n.ns, ["ip", "link", "set", n.veth_dev, "up"])
        return n.ns, n.wg

    def restart_hub(self) -> Child:
        """Stop the hub service and start it again from the same config (it reads the key
        store at start: restart it after an operator key rotation); waits until it answers."""
        self.procs.stop("wg_hub")
        self._hub()
        return self.procs.children["wg_hub"]

    def restart_bot(self) -> Child:
        """Stop the bot and start it again (same settings and Matrix store); waits until ready."""
        self.procs.stop("bot")
        self._bot()
        return self.procs.children["bot"]

    def _enroll(self, index: int, name: str) -> None:
        n = self.names.device(index)
        dev = RigDevice(
            name=name, index=index, netns=n.ns, interface=n.wg, state_dir=self.workdir / f"dev-{name}",
            room_alias=cfg.device_alias(name, self.server_name),
        )  # fmt: skip
        dev.state_dir.mkdir(mode=0o700, exist_ok=True)
        self.devices[name] = dev
        self.underlay_netns(index)
        r = httpx.post(
            self.hub_api_url + "/api/tokens", headers=self._bearer(), timeout=30,
            json={"device_name": name, "profile": "demo", "ttl_s": 600},
        )  # fmt: skip
        if r.status_code != 200:
            raise FnError("rig_step_failed", f"token for {name}: HTTP {r.status_code} {r.text[:300]}")
        token = str(r.json()["token"])
        enroll = [str(self.root / "pipelines" / "enroll_device"), "--token", token,
                  "--interface", n.wg, "--config-dir", str(dev.state_dir / "wg"), "--no-systemd"]  # fmt: skip
        env, cwd = self.env(dev.state_dir), self.root
        if self.device_venv is not None:
            enroll = hide_checkout(self.root, [str(pipeline(self.device_venv, "enroll_device")), *enroll[1:]])
            env, cwd = installed_env(env, self.device_venv), dev.state_dir
        proc = subprocess.run(
            [*nsenter(n.ns), *enroll], cwd=cwd, env=env, capture_output=True, text=True,
            timeout=180, check=False,
        )  # fmt: skip
        (self.log_dir / f"enroll-{name}.log").write_text(proc.stderr)
        if proc.returncode != 0:
            raise FnError(
                "rig_step_failed", f"enroll_device {name} exited {proc.returncode}: {proc.stderr[-1500:]}"
            )
        dev.enrollment = json.loads(proc.stdout)
        dev.address = str(dev.enrollment["address"])
        dev.device_id = str(dev.enrollment["device_id"])
        creds_file = dev.enrollment.get("matrix_credentials")
        if not creds_file:
            raise FnError("rig_step_failed", f"the hub gave {name} no Matrix account (see logs/wg_hub.log)")
        matrix = json.loads(Path(creds_file).read_text(encoding="utf-8"))
        dev.matrix_user = str(matrix["user_id"])
        # the bot learns the device from its hub-signed manifest (see config.bot_toml)
        shutil.copy(str(dev.enrollment["manifest_file"]), self.manifests_dir / f"{name}.json")
        agent_dir = dev.state_dir / "device_agent"
        agent_dir.mkdir(mode=0o700, exist_ok=True)
        conf = cfg.agent_config(
            device_name=name, device_id=dev.device_id, manifest_path=str(dev.enrollment["manifest_file"]),
            operator_key=self.operator_public_key, matrix_user=dev.matrix_user,
            matrix_password=str(matrix["password"]), bot_user=self.bot_user, server_name=self.server_name,
            docker_host=self.docker_host if index == 1 else None,
        )  # fmt: skip
        dev.config_path = agent_dir / "config.json"
        _write_private(dev.config_path, json.dumps(conf, indent=2) + "\n")

    # --- device agents --------------------------------------------------------------------------
    def start_agent(self, name: str) -> Child:
        dev = self.devices[name]
        if self.device_venv is not None:
            argv = [str(self.device_venv / "bin/python"), "-m", "meshagents.apps.device_agent",
                    "--config", str(dev.config_path)]  # fmt: skip
            env = {**installed_env(self.env(dev.state_dir), self.device_venv), "FN_CALLER": "device_agent"}
            return self.procs.start(
                dev.process_name, hide_checkout(self.root, argv), env=env, netns=dev.netns, cwd=dev.state_dir
            )
        return self._app(
            dev.process_name,
            "device_agent",
            "--config",
            str(dev.config_path),
            state=dev.state_dir,
            netns=dev.netns,
        )

    def agent(self, name: str) -> Child:
        return self.procs.children[self.devices[name].process_name]

    def kill_agent(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` to the agent's process group (``kill -9`` mid-command by default)."""
        child = self.agent(name)
        self.procs.signal(self.devices[name].process_name, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.proc.wait(10)

    def restart_agent(self, name: str) -> Child:
        """Stop the agent (SIGTERM, then SIGKILL) if it runs, and start it again with the same state."""
        self.procs.stop(self.devices[name].process_name)
        return self.start_agent(name)

    # --- mesh -----------------------------------------------------------------------------------
    def hub_interface_down(self) -> None:
        self.namespaces.link_set(self.hub_netns, self.hub_interface, "down")

    def hub_interface_up(self) -> None:
        self.namespaces.link_set(self.hub_netns, self.hub_interface, "up")
        # the link going down dropped the address's routes; put them back
        self.namespaces.run(self.hub_netns, ["ip", "addr", "replace", MESH_CIDR, "dev", self.hub_interface])

    # --- operator -------------------------------------------------------------------------------
    def operator_login(self, store: str = "rig") -> OperatorLogin:
        return OperatorLogin(
            homeserver=self.homeserver_url, user_id=self.operator_user, password=self.operator_password,
            cross_signing_path=self.cross_signing_path, store_dir=self.operator_store_root / "stores" / store,
            recovery_key=self.recovery_key,
        )  # fmt: skip

    def operator_client(self, store: str = "rig") -> Operator:
        """An operator client (one Matrix device per ``store``), cross-signed, not started yet."""
        return Operator(self.operator_login(store), bot_user=self.bot_user, server_name=self.server_name)

    async def _settle(self, timeout: float = 90.0) -> None:
        op = self.operator_client("rig")
        await op.start()
        try:
            approvals = await op.approvals_room()
            for name, dev in self.devices.items():
                room = await op.device_room(name)
                deadline = time.monotonic() + timeout
                restarts = 0
                while True:
                    child = self.agent(name)
                    if not child.alive():
                        # its first join of #operator-approvals can come before the bot's invite
                        if restarts >= 10 or time.monotonic() > deadline:
                            raise FnError("rig_start_failed", f"agent {name} exits: {child.tail()}")
                        restarts += 1
                        await asyncio.sleep(1.0)
                        self.restart_agent(name)
                        continue
                    try:
                        await op.wait_member(room, dev.matrix_user, timeout=2)
                        await op.wait_member(approvals, dev.matrix_user, timeout=2)
                        break
                    except (FnError, TimeoutError):
                        if time.monotonic() > deadline:
                            raise FnError(
                                "rig_start_failed", f"agent {name} did not join: {child.tail()}"
                            ) from None
            await self._wait_bot_devices(deadline=time.monotonic() + timeout)
        finally:
            await op.stop()

    async def _wait_bot_devices(self, deadline: float) -> None:
        """Until the bot maps every device to its room
        (its control API's ``GET /devices``): before that a command would go unanswered."""
        want = set(self.devices)
        rows: list[dict[str, Any]] = []
        async with httpx.AsyncClient(timeout=5) as http:
            while time.monotonic() < deadline:
                r = await http.get(self.bot_api_url + "/devices", headers=self._bearer())
                rows = r.json() if r.status_code == 200 else []
                ready = {row["device"] for row in rows if row.get("room_id")}
                if want <= ready:
                    return
                await asyncio.sleep(0.5)
        raise FnError("rig_start_failed", f"the bot does not know every device yet: {rows}")

    def operator_account(self) -> Any:
        """The operator's account for ``meshagents.matrix.recovery`` (secret storage)."""
        from meshagents.matrix.recovery import Account

        return Account(
            self.homeserver_url, self.operator_user, self.operator_password, self.cross_signing_path
        )

    def _recovery(self) -> None:
        # After _settle: the operator's cross-signing identity is on the server by then.
        from meshagents.matrix.recovery import create_recovery

        self.recovery_key = create_recovery(self.operator_account()).recovery_key

    def connection(self) -> dict[str, Any]:
        """What ``./fn chat`` needs (written 0600 by the demo)."""
        return cfg.connection_info(
            homeserver=self.homeserver_url, server_name=self.server_name, operator_user=self.operator_user,
            operator_password=self.operator_password, cross_signing_path=str(self.cross_signing_path),
            bot_user=self.bot_user, devices=list(self.device_names), dashboard=self.dashboard_url,
            hub_api=self.hub_api_url, bot_api=self.bot_api_url, api_token=self.api_token,
            store_root=str(self.operator_store_root / "stores"), recovery_key=self.recovery_key,
            operator_state=str(self.hub_state),
        )  # fmt: skip


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_atomic(path, text, fsync=False)
