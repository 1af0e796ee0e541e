"""A real Docker engine for tests: Debian's dockerd in its own network namespace.

Use it from any domain's tests::

    from tests.testbed.docker_engine import docker_engine  # noqa: F401  (session fixture)

    def test_x(docker_engine: DockerEngine) -> None:
        c = docker_engine.run("sleep", "60")        # per-run name, removed at teardown
        ...  docker_engine.docker_host / .client / .netns_path / .image

Or without pytest: ``with engine_running() as eng: ...``.

What it sets up (see FIELD-NOTES.md, Docker):
- a named network namespace ``dk-<suffix>`` with only ``lo`` up, so no image pull or
  container traffic can ever leave the machine (``--bridge=none``, no iptables);
- dockerd started there with ``nsenter --net`` (not ``ip netns exec``, which copies
  the mount table and keeps stopped containers' namespaces alive) with its own
  socket, data root, exec root and pidfile in a short per-run /tmp directory, and an
  *absolute* cgroup parent ``/meshagents-dk-<suffix>`` (relative ones nest under the
  caller's cgroup on this cgroup-v1 host);
- an image ``meshagents-busybox:<suffix>`` imported from a rootfs holding the static
  busybox (no registry is reachable), tagged so that ``run()`` never tries a pull.

Teardown, also after a failure: remove every container, stop dockerd (SIGTERM, then
SIGKILL), kill leftover containerd shims of this engine by pid, unmount anything
left under the run directory, remove it, the cgroup directories and the namespace.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from meshagents.testbed.rig.docker import cleanup_cgroups, rootfs_tar, shim_pids, unmount_under

BUSYBOX = "/bin/busybox"
#: Applets linked in the image (busybox runs them by argv[0]).
APPLETS = (
    "sh", "ls", "ps", "cat", "echo", "sleep", "touch", "rm", "ping", "ip", "id", "true",
    "false", "test", "head", "tail", "wc", "seq", "yes", "kill", "hostname", "mkdir",
)  # fmt: skip
READY_TIMEOUT = 20.0


@dataclass
class DockerEngine:
    suffix: str
    netns: str
    run_dir: Path
    proc: subprocess.Popen[bytes]
    image: str
    cgroup_parent: str
    client: Any = None  # docker.DockerClient (imported lazily: the SDK is an extra)
    _containers: list[str] = field(default_factory=list)

    @property
    def socket(self) -> Path:
        return self.run_dir / "docker.sock"

    @property
    def docker_host(self) -> str:
        return f"unix://{self.socket}"

    @property
    def netns_path(self) -> str:
        return f"/run/netns/{self.netns}"

    def name(self, base: str) -> str:
        """A per-run container name."""
        return f"{base}-{self.suffix}-{secrets.token_hex(2)}"

    def run(self, *cmd: str, name: str | None = None, **kwargs: Any) -> Any:
        """Start a detached container of the busybox image (init=True so stop is quick)."""
        kwargs.setdefault("init", True)
        kwargs.setdefault("detach", True)
        cname = name or self.name("c")
        self._containers.append(cname)
        return self.client.containers.run(self.image, list(cmd), name=cname, **kwargs)


def _run(*cmd: str) -> None:
    subprocess.run(cmd, check=True, capture_output=True)


def _stop(eng: DockerEngine) -> None:
    if eng.client is not None:
        # Best effort: a wedged engine must not stop the rest of the teardown.
        with contextlib.suppress(Exception):
            for c in eng.client.containers.list(all=True):
                with contextlib.suppress(Exception):
                    c.remove(force=True)
        eng.client.close()
    if eng.proc.poll() is None:
        eng.proc.send_signal(signal.SIGTERM)
        try:
            eng.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            eng.proc.kill()
            eng.proc.wait(timeout=5)
    for pid in shim_pids(eng.run_dir):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    unmount_under(eng.run_dir)
    shutil.rmtree(eng.run_dir, ignore_errors=True)
    cleanup_cgroups(eng.cgroup_parent)
    subprocess.run(["ip", "netns", "delete", eng.netns], capture_output=True)


@contextlib.contextmanager
def engine_running(suffix: str | None = None) -> Iterator[DockerEngine]:
    """Start an engine in its own netns; yield it; tear everything down."""
    for binary in ("dockerd", "containerd", "runc", "nsenter", "ip"):
        if shutil.which(binary) is None:
            pytest.skip(f"needs {binary} (docker.io, installed by .ci/run)")
    if not Path(BUSYBOX).exists():
        pytest.skip("needs busybox-static (installed by .ci/run)")
    sfx = suffix or secrets.token_hex(3)
    netns = f"dk-{sfx}"
    # Short path: unix socket paths (ours and containerd's) must stay under 108 bytes.
    run_dir = Path(tempfile.mkdtemp(prefix=f"mad-{sfx}-", dir="/tmp"))
    cgroup_parent = f"/meshagents-dk-{sfx}"
    _run("ip", "netns", "add", netns)
    proc: subprocess.Popen[bytes] | None = None
    eng: DockerEngine | None = None
    try:
        _run("ip", "-n", netns, "link", "set", "lo", "up")
        log = open(run_dir / "dockerd.log", "wb")  # noqa: SIM115  (kept by the daemon)
        proc = subprocess.Popen(
            [
                "nsenter", f"--net=/run/netns/{netns}", "dockerd",
                "-H", f"unix://{run_dir}/docker.sock",
                "--data-root", str(run_dir / "data"),
                "--exec-root", str(run_dir / "exec"),
                "--pidfile", str(run_dir / "docker.pid"),
                "--iptables=false", "--ip-forward=false", "--ip-masq=false", "--bridge=none",
                "--cgroup-parent", cgroup_parent,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )  # fmt: skip
        log.close()
        eng = DockerEngine(sfx, netns, run_dir, proc, f"meshagents-busybox:{sfx}", cgroup_parent)
        eng.client = _wait_ready(eng)
        image = eng.client.api.import_image_from_data(
            rootfs_tar(APPLETS), repository="meshagents-busybox", tag=sfx, changes=["ENV PATH=/bin"]
        )
        del image
        yield eng
    finally:
        if eng is not None:
            _stop(eng)
        else:
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
            shutil.rmtree(run_dir, ignore_errors=True)
            subprocess.run(["ip", "netns", "delete", netns], capture_output=True)


def _wait_ready(eng: DockerEngine) -> Any:
    import docker

    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if eng.proc.poll() is not None:
            log = (eng.run_dir / "dockerd.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"dockerd exited with {eng.proc.returncode}:\n{log}")
        if eng.socket.exists():
            client = docker.DockerClient(base_url=eng.docker_host, timeout=30)
            try:
                client.ping()
                return client
            except Exception:
                client.close()
        time.sleep(0.05)
    raise RuntimeError(f"dockerd not ready after {READY_TIMEOUT}s")


@pytest.fixture(scope="session")
def docker_engine() -> Iterator[DockerEngine]:
    """A real engine in its own netns for the whole session (root only)."""
    if os.geteuid() != 0:
        pytest.skip("needs root (dockerd, network namespaces)")
    with engine_running() as eng:
        yield eng
