"""The I/O shell of remote runs: probe the host, ship the bundle when it is missing
or out of date, run the function with its parameters on stdin, stream its output,
map failures to stable codes and record one local telemetry row naming the host."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import IO, Any

from meshagents.errors import FnError
from meshagents.remote.bundle import RemotePlatform, make_bundle, parse_probe
from meshagents.remote.sshcmd import (
    SSH_FAILED,
    SshOptions,
    classify_ssh_failure,
    has_bundle_command,
    probe_command,
    run_command,
    ssh_argv,
    upload_command,
)
from meshagents.runtime import telemetry
from meshagents.state import state_dir

MIN_PYTHON = (3, 11)
INSTALL_HINT = "install python3 >= 3.11 (Debian/Ubuntu: apt-get install python3; Termux: pkg install python)"


def _options() -> SshOptions:
    # Unix socket paths are limited to 108 bytes: keep the control sockets in a short
    # per-state-directory folder under /tmp rather than in the state directory.
    digest = hashlib.sha256(str(state_dir()).encode()).hexdigest()[:10]
    control = Path(tempfile.gettempdir()) / f"fnssh.{os.getuid()}.{digest}"
    control.mkdir(mode=0o700, exist_ok=True)
    if control.stat().st_uid != os.getuid() or control.stat().st_mode & 0o077:
        raise FnError("ssh_control_unsafe", f"{control} is not a private directory of this user")
    return SshOptions.from_env(control)


def _ssh(
    host: str, command: str, opts: SshOptions, stdin: bytes | None = None
) -> subprocess.CompletedProcess[bytes]:
    proc = subprocess.run(ssh_argv(host, command, opts), input=stdin, capture_output=True, check=False)
    if proc.returncode == SSH_FAILED:
        err = proc.stderr.decode(errors="replace").strip()
        code = classify_ssh_failure(err)
        raise FnError(code, f"{host}: {err or 'ssh failed'}", host=host)
    return proc


def probe(host: str, opts: SshOptions) -> RemotePlatform:
    proc = _ssh(host, probe_command(), opts)
    platform = parse_probe(proc.stdout.decode(errors="replace"))
    if platform is None:
        raise FnError("remote_python_missing", f"{host} has no python3: {INSTALL_HINT}", host=host)
    if (platform.major, platform.minor) < MIN_PYTHON:
        raise FnError(
            "remote_python_missing",
            f"{host} has Python {platform.major}.{platform.minor}: {INSTALL_HINT}",
            host=host,
        )
    return platform


def ensure_bundle(host: str, opts: SshOptions, platform: RemotePlatform) -> str:
    from meshagents.remote.bundle import bundle_id
    from meshagents.state import checkout_root

    bid = bundle_id(checkout_root("run --host"), platform)
    present = _ssh(host, has_bundle_command(bid), opts).stdout.decode().strip() == "present"
    if present:
        return bid
    bid, data = make_bundle(platform)
    proc = _ssh(host, upload_command(bid), opts, stdin=data)
    if proc.returncode != 0:
        raise FnError(
            "remote_upload_failed",
            f"{host}: {proc.stderr.decode(errors='replace').strip()[-300:]}",
            host=host,
        )
    return bid


class _StderrRelay:
    """Forwards stderr lines as they come, holding back the last one: if it is the
    remote's error JSON, the local side replaces it with its own."""

    def __init__(self, src: IO[bytes], dst: IO[str]) -> None:
        self.src, self.dst = src, dst
        self.last: str | None = None

    def run(self) -> None:
        for raw in iter(self.src.readline, b""):
            line = raw.decode(errors="replace")
            if self.last is not None:
                self.dst.write(self.last)
                self.dst.flush()
            self.last = line

    def flush_last(self) -> None:
        if self.last is not None:
            self.dst.write(self.last)
            self.dst.flush()
            self.last = None


def _relay_stdout(src: IO[bytes], dst: IO[str]) -> None:
    for raw in iter(src.readline, b""):
        dst.write(raw.decode(errors="replace"))
        dst.flush()


def _remote_error(line: str | None) -> dict[str, Any] | None:
    if not line:
        return None
    try:
        data = json.loads(line)
    except json.JSONDecodeError:
        return None
    return data if isinstance(data, dict) and "error" in data else None


def run_remote(host: str, function_id: str, argv: list[str], *, caller: str = "cli") -> int:
    """Run ``function_id`` on ``host``; returns the exit code to use locally."""
    started, t0 = time.time(), time.perf_counter()
    code: str | None = None
    try:
        opts = _options()
        platform = probe(host, opts)
        bid = ensure_bundle(host, opts, platform)
        request = json.dumps({"function": function_id, "argv": argv, "caller": f"remote:{caller}"}).encode()
        proc = subprocess.Popen(
            ssh_argv(host, run_command(bid, platform.python), opts),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert proc.stdin and proc.stdout and proc.stderr
        proc.stdin.write(request)
        proc.stdin.close()
        relay = _StderrRelay(proc.stderr, sys.stderr)
        threads = [
            threading.Thread(target=relay.run, daemon=True),
            threading.Thread(target=_relay_stdout, args=(proc.stdout, sys.stdout), daemon=True),
        ]
        for t in threads:
            t.start()
        rc = proc.wait()
        for t in threads:
            t.join()
        if rc == 0:
            relay.flush_last()
            return 0
        if rc == SSH_FAILED:
            relay.flush_last()
            raise FnError("host_unreachable", f"{host}: the connection failed during the run", host=host)
        remote = _remote_error(relay.last)
        if remote is None:
            relay.flush_last()
            raise FnError(
                "remote_failed", f"{host}: {function_id} exited {rc}", host=host, remote_error="unknown"
            )
        relay.last = None
        if rc == 2:  # bad usage or unknown id on the remote: same code, same exit status
            code = str(remote["error"])
            print(json.dumps({**remote, "host": host}, ensure_ascii=False), file=sys.stderr)
            return 2
        raise FnError(
            "remote_failed",
            str(remote.get("message", "")),
            remote_error=remote["error"],
            host=host,
            **{k: v for k, v in remote.items() if k not in ("error", "message")},
        )
    except FnError as exc:
        code = exc.code
        raise
    finally:
        telemetry.record(
            telemetry.CallRecord(
                function_id=function_id,
                started_at=started,
                duration_ms=(time.perf_counter() - t0) * 1000,
                success=code is None,
                error_code=code,
                caller=caller,
                host=host,
            )
        )
