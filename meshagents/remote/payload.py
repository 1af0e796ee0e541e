"""Files to and from a remote host over the same SSH session as the runs: the Synapse
wheels a hub host installs (gathered here, where the package index is reachable), a
backup archive coming back, an archive going out for a restore."""

from __future__ import annotations

import hashlib
import io
import shlex
import subprocess
import sys
import tarfile
from pathlib import Path

from meshagents.errors import FnError
from meshagents.remote.bundle import RemotePlatform, manylinux_platforms
from meshagents.remote.runner import _options, _ssh, probe
from meshagents.remote.sshcmd import ssh_argv
from meshagents.state import cache_dir

SYNAPSE_REQUIREMENTS = ("matrix-synapse>=1.100", "psycopg2-binary>=2.9")
REMOTE_WHEELS = "/var/cache/meshagents/synapse-wheels"


def wheels_dir(platform: RemotePlatform, reqs: tuple[str, ...] = SYNAPSE_REQUIREMENTS) -> Path:
    """Binary wheels of ``reqs`` for the host's Python and machine, downloaded once and cached."""
    key = hashlib.sha256(("\n".join(reqs) + platform.tag).encode()).hexdigest()[:12]
    target = cache_dir() / "remote" / f"wheels-{platform.tag}-{key}"
    if (target / ".complete").exists():
        return target
    part = target.with_name(target.name + ".part")
    subprocess.run(["rm", "-rf", str(part)], check=True)
    argv = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--quiet",
        "--disable-pip-version-check",
        "--dest",
        str(part),
        "--only-binary=:all:",
        "--implementation",
        "cp",
        "--python-version",
        f"{platform.major}.{platform.minor}",
    ]
    for plat in manylinux_platforms(platform.machine):
        argv += ["--platform", plat]
    proc = subprocess.run([*argv, *reqs], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise FnError(
            "remote_bundle_failed", f"could not gather Synapse wheels: {proc.stderr.strip()[-400:]}"
        )
    (part / ".complete").touch()
    subprocess.run(["rm", "-rf", str(target)], check=True)
    part.rename(target)
    return target


def ship_wheels(host: str) -> str:
    """Make the host hold the Synapse wheels for its platform; the directory on the host."""
    opts = _options()
    platform = probe(host, opts)
    local = wheels_dir(platform)
    remote = f"{REMOTE_WHEELS}/{local.name}"
    q = shlex.quote(remote)
    if (
        _ssh(host, f"test -f {q}/.complete && echo present || echo missing", opts).stdout.strip()
        == b"present"
    ):
        return remote
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for whl in sorted(local.glob("*.whl")):
            tar.add(whl, arcname=whl.name)
    cmd = (
        f"set -e; umask 022; rm -rf {q}.part; mkdir -p {q}.part; tar -xf - -C {q}.part; "
        f"touch {q}.part/.complete; rm -rf {q}; mv {q}.part {q}"
    )
    proc = _ssh(host, cmd, opts, stdin=buf.getvalue())
    if proc.returncode != 0:
        raise FnError(
            "remote_upload_failed", f"{host}: {proc.stderr.decode(errors='replace')[-300:]}", host=host
        )
    return remote


def download(host: str, remote_path: str, local: Path) -> Path:
    opts = _options()
    local.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    part = local.with_name(local.name + ".part")
    with part.open("wb") as fh:
        proc = subprocess.run(
            ssh_argv(host, f"cat {shlex.quote(remote_path)}", opts),
            stdout=fh,
            stderr=subprocess.PIPE,
            check=False,
        )
    if proc.returncode != 0:
        part.unlink(missing_ok=True)
        raise FnError(
            "remote_download_failed", f"{host}:{remote_path}: {proc.stderr.decode(errors='replace')[-300:]}"
        )
    part.chmod(0o600)
    part.rename(local)
    return local


def upload(host: str, local: Path, remote_path: str) -> str:
    opts = _options()
    q = shlex.quote(remote_path)
    cmd = f"set -e; umask 077; mkdir -p $(dirname {q}); cat > {q}.part; mv {q}.part {q}"
    proc = _ssh(host, cmd, opts, stdin=local.read_bytes())
    if proc.returncode != 0:
        raise FnError(
            "remote_upload_failed", f"{host}: {proc.stderr.decode(errors='replace')[-300:]}", host=host
        )
    return remote_path
