"""The demo's Docker engine: Debian's dockerd in its own network namespace, one demo container.

    eng = DockerRig(names, run_dir, procs, namespaces)
    eng.start()                  # netns (lo only), dockerd, busybox image, container "demo-web-<sfx>"
    eng.docker_host              # "unix:///tmp/mrk-<sfx>/docker.sock" for the device agent
    eng.stop()                   # containers, dockerd, shims, mounts, cgroups, run dir

The recipe of FIELD-NOTES (Docker), shared with tests/testbed/docker_engine.py, which
imports ``rootfs_tar``, ``shim_pids``, ``cleanup_cgroups`` and ``unmount_under`` from
here: ``--bridge=none`` and no iptables, so no pull and no container traffic can leave
the machine; an absolute cgroup parent; an image imported from a busybox rootfs built
in memory and tagged (an untagged image makes ``run()`` try a pull). The namespace is
made through the rig's ``Namespaces`` so the rig's teardown deletes it even if this one
fails half way.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import signal
import subprocess
import tarfile
import time
from pathlib import Path
from typing import Any

from meshagents.errors import FnError
from meshagents.testbed.rig.names import RunNames
from meshagents.testbed.rig.netns import Namespaces
from meshagents.testbed.rig.procs import Processes

BUSYBOX = "/bin/busybox"
APPLETS = ("sh", "ls", "ps", "cat", "echo", "sleep", "date", "hostname", "true", "id", "head", "tail")
READY_TIMEOUT = 30.0


def rootfs_tar(applets: tuple[str, ...] = APPLETS) -> bytes:
    """A tar of a minimal busybox rootfs (static busybox + applet links + passwd), in memory."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:

        def add_dir(path: str, mode: int = 0o755) -> None:
            info = tarfile.TarInfo(path)
            info.type, info.mode = tarfile.DIRTYPE, mode
            tar.addfile(info)

        def add_file(path: str, data: bytes, mode: int = 0o644) -> None:
            info = tarfile.TarInfo(path)
            info.size, info.mode = len(data), mode
            tar.addfile(info, io.BytesIO(data))

        for d in ("bin", "etc", "proc", "sys", "dev", "root"):
            add_dir(d)
        add_dir("tmp", 0o1777)
        add_file("bin/busybox", Path(BUSYBOX).read_bytes(), 0o755)
        for applet in applets:
            info = tarfile.TarInfo(f"bin/{applet}")
            info.type, info.linkname = tarfile.SYMTYPE, "busybox"
            tar.addfile(info)
        add_file("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n")
        add_file("etc/group", b"root:x:0:\nnogroup:x:65534:\n")
    return buf.getvalue()


class DockerRig:
    def __init__(self, names: RunNames, run_dir: Path, procs: Processes, namespaces: Namespaces) -> None:
        self.names = names
        self.run_dir = run_dir  # short: unix socket paths must stay under 108 bytes
        self.procs = procs
        self.namespaces = namespaces
        self.client: Any = None
        self.container: str = names.container

    @property
    def socket(self) -> Path:
        return self.run_dir / "docker.sock"

    @property
    def docker_host(self) -> str:
        return f"unix://{self.socket}"

    def start(self) -> None:
        for binary in ("dockerd", "containerd", "runc"):
            if shutil.which(binary) is None:
                raise FnError("missing_binary", f"needs {binary} (Debian package docker.io)")
        if not Path(BUSYBOX).exists():
            raise FnError("missing_binary", "needs /bin/busybox (Debian package busybox-static)")
        self.run_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        ns = self.names.docker_ns
        self.namespaces.add(ns)
        self.procs.start(
            "dockerd",
            [
                "dockerd", "-H", self.docker_host,
                "--data-root", str(self.run_dir / "data"),
                "--exec-root", str(self.run_dir / "exec"),
                "--pidfile", str(self.run_dir / "docker.pid"),
                "--iptables=false", "--ip-forward=false", "--ip-masq=false", "--bridge=none",
                "--cgroup-parent", self.names.docker_cgroup,
            ],
            env=dict(os.environ),
            netns=ns,
        )  # fmt: skip
        self.client = self._wait_ready()
        self.client.api.import_image_from_data(
            rootfs_tar(),
            repository=self.names.docker_image.split(":")[0],
            tag=self.names.suffix,
            changes=["ENV PATH=/bin"],
        )
        self.client.containers.run(
            self.names.docker_image,
            ["sh", "-c", "echo demo container up; while true; do date; sleep 5; done"],
            name=self.container,
            detach=True,
            init=True,  # without an init, PID 1 ignores SIGTERM and stop waits its timeout
            network_mode="none",
        )

    def _wait_ready(self) -> Any:
        import docker

        child = self.procs.children["dockerd"]
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if not child.alive():
                raise FnError("docker_start_failed", f"dockerd exited: {child.tail(1500)}")
            if self.socket.exists():
                client = docker.DockerClient(base_url=self.docker_host, timeout=30)
                try:
                    client.ping()
                    return client
                except Exception:
                    client.close()
            time.sleep(0.05)
        raise FnError("docker_start_failed", f"dockerd not ready after {READY_TIMEOUT:.0f} s")

    def stop(self) -> None:
        if self.client is not None:
            with contextlib.suppress(Exception):
                for c in self.client.containers.list(all=True):
                    with contextlib.suppress(Exception):
                        c.remove(force=True)
            with contextlib.suppress(Exception):
                self.client.close()
            self.client = None
        self.procs.stop("dockerd", timeout=15)
        for pid in shim_pids(self.run_dir):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        unmount_under(self.run_dir)
        shutil.rmtree(self.run_dir, ignore_errors=True)
        cleanup_cgroups(self.names.docker_cgroup)


def shim_pids(run_dir: Path) -> list[int]:
    """containerd shims of *this* engine: their command line names our exec root."""
    marker = str(run_dir).encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if marker in (entry / "cmdline").read_bytes():
                pids.append(int(entry.name))
    return pids


def cleanup_cgroups(parent: str) -> None:
    """Remove the engine's cgroups under ``parent`` in every hierarchy (v1 and v2), deepest first."""
    root = Path("/sys/fs/cgroup")
    for hierarchy in [root, *(p for p in root.iterdir() if p.is_dir())]:
        top = hierarchy / parent.lstrip("/")
        if not top.is_dir():
            continue
        for d in sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
            with contextlib.suppress(OSError):
                d.rmdir()
        with contextlib.suppress(OSError):
            top.rmdir()


def unmount_under(run_dir: Path) -> None:
    """Lazily unmount everything the engine mounted under ``run_dir`` (deepest first)."""
    prefix = str(run_dir) + "/"
    with open("/proc/mounts", encoding="utf-8") as f:
        targets = [line.split()[1] for line in f if line.split()[1].startswith(prefix)]
    for target in sorted(targets, key=len, reverse=True):
        subprocess.run(["umount", "-l", target], capture_output=True, check=False)
