"""OpenSSH command lines and the mapping of ssh's failures to stable codes (pure)."""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass
from pathlib import Path

SSH_FAILED = 255  # ssh's own exit status when it could not run the command

AUTH_MARKERS = (
    "permission denied",
    "too many authentication failures",
    "host key verification failed",
    "no more authentication methods",
)
UNREACHABLE_MARKERS = (
    "connection refused",
    "no route to host",
    "timed out",
    "could not resolve hostname",
    "network is unreachable",
    "connection closed",
    "connection reset",
    "name or service not known",
)


@dataclass(frozen=True)
class SshOptions:
    config: Path | None = None
    control_dir: Path | None = None
    connect_timeout_s: int = 10

    @classmethod
    def from_env(cls, control_dir: Path | None) -> SshOptions:
        cfg = os.environ.get("FN_SSH_CONFIG")
        return cls(config=Path(cfg) if cfg else None, control_dir=control_dir)


def ssh_argv(host: str, remote_command: str, opts: SshOptions) -> list[str]:
    argv = ["ssh"]
    if opts.config is not None:
        argv += ["-F", str(opts.config)]
    argv += ["-o", "BatchMode=yes", "-o", f"ConnectTimeout={opts.connect_timeout_s}"]
    if opts.control_dir is not None:
        # One TCP/SSH session for the probe, the upload and the run.
        argv += [
            "-o", "ControlMaster=auto",
            "-o", f"ControlPath={opts.control_dir}/%C",
            "-o", "ControlPersist=30",
        ]  # fmt: skip
    argv += ["--", host, remote_command]
    return argv


def classify_ssh_failure(stderr: str) -> str:
    """``auth_failed`` or ``host_unreachable`` for an ssh exit status of 255."""
    text = stderr.lower()
    if any(m in text for m in AUTH_MARKERS):
        return "auth_failed"
    return "host_unreachable"


def probe_command() -> str:
    """Prints ``<python path> <major> <minor> <machine>`` for the first python3 >= 3.11
    that really runs (version-manager shims may exist and fail), else ``nopython``."""
    py = (
        "import sys, platform; assert sys.version_info >= (3, 11); "
        "print(sys.executable, sys.version_info[0], sys.version_info[1], platform.machine())"
    )
    return (
        "for p in python3 python3.13 python3.12 python3.11; do "
        f'out=$("$p" -c {shlex.quote(py)} 2>/dev/null) && {{ echo "$out"; exit 0; }}; '
        "done; echo nopython"
    )


def bundle_dir_expr(bundle_id: str) -> str:
    return f'"$HOME/.cache/meshagents/bundles/{bundle_id}"'


def has_bundle_command(bundle_id: str) -> str:
    return f"test -f {bundle_dir_expr(bundle_id)}/.complete && echo present || echo missing"


def upload_command(bundle_id: str) -> str:
    d = bundle_dir_expr(bundle_id)
    # Unpack beside, then rename: a broken upload never looks complete.
    return (
        f'set -e; umask 077; mkdir -p "$HOME/.cache/meshagents/bundles"; rm -rf {d}.part; mkdir {d}.part; '
        f"tar -xzf - -C {d}.part; touch {d}.part/.complete; rm -rf {d}; mv {d}.part {d}; "
        # keep the three newest bundles
        "cd \"$HOME/.cache/meshagents/bundles\" && ls -1t | grep -v '\\.part$' | tail -n +4 | xargs -r rm -rf"
    )


def run_command(bundle_id: str, python: str) -> str:
    d = bundle_dir_expr(bundle_id)
    return (
        f"cd {d} && FN_PROJECT_ROOT={d} PYTHONPATH={d}:{d}/site "
        f"exec {shlex.quote(python)} -m meshagents.remote.entry"
    )
