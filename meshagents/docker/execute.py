"""Run a whitelisted command in a running container, bounded in time and output.

The whitelist is checked before the engine is asked for anything, so a refused
command never reaches the container. The engine's exec API has no timeout: the
output is read in a helper thread while this one waits; when the time is up the
exec's process is killed by its host pid (the agent runs on the container's host).
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import docker
from docker.models.containers import Container

from meshagents.docker.engine import require_running
from meshagents.docker.errors import docker_errors
from meshagents.docker.output import DEFAULT_CAP, CappedBuffer
from meshagents.docker.whitelist import check_argv
from meshagents.errors import FnError

DEFAULT_TIMEOUT = 30.0
MAX_TIMEOUT = 3600.0
MAX_CAP = 16 * 1024 * 1024


@dataclass(frozen=True)
class ExecResult:
    container: str
    argv: list[str]
    exit_code: int | None
    timed_out: bool
    duration_ms: float
    stdout: str
    stderr: str
    stdout_truncated: bool
    stderr_truncated: bool
    stdout_bytes: int
    stderr_bytes: int


def check_limits(timeout: float, output_cap: int) -> None:
    if not 0 < timeout <= MAX_TIMEOUT:
        raise FnError("rejected_args", f"timeout must be in (0, {MAX_TIMEOUT:g}] seconds")
    if not 0 <= output_cap <= MAX_CAP:
        raise FnError("rejected_args", f"output cap must be in [0, {MAX_CAP}] bytes")


def _pump(stream: Iterator[tuple[bytes | None, bytes | None]], out: queue.Queue[Any]) -> None:
    try:
        for item in stream:
            out.put(item)
    except Exception as exc:  # the stream ends with an error when we close it on timeout
        out.put(exc)
    finally:
        out.put(None)


def _ppid_map() -> dict[int, int]:
    """pid -> parent pid of every process on the host."""
    out: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        # The command name may hold spaces and parentheses: split after the last ')'.
        fields = stat[stat.rindex(b")") + 2 :].split()
        out[int(entry.name)] = int(fields[1])
    return out


def descendants(root: int, ppids: dict[int, int]) -> list[int]:
    """``root`` and every process below it (pure: takes a pid -> ppid map)."""
    children: dict[int, list[int]] = {}
    for pid, ppid in ppids.items():
        children.setdefault(ppid, []).append(pid)
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def _kill_tree(root: int) -> None:
    # Stop the tree first so nothing forks past us, then kill it all: killing only
    # the exec's own process would leave `sh -c "...; sleep"` children running.
    seen: set[int] = set()
    for _ in range(5):
        tree = [p for p in descendants(root, _ppid_map()) if p not in seen]
        if not tree:
            break
        for pid in tree:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGSTOP)
        seen.update(tree)
    for pid in seen:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _kill_exec(api: docker.APIClient, exec_id: str) -> None:
    pid = int(api.exec_inspect(exec_id).get("Pid") or 0)
    if pid > 0:
        _kill_tree(pid)


def _exit_code(api: docker.APIClient, exec_id: str, wait: float = 2.0) -> int | None:
    # The stream can end a moment before the engine records the exit code.
    deadline = time.monotonic() + wait
    while True:
        info = api.exec_inspect(exec_id)
        if not info.get("Running") or time.monotonic() >= deadline:
            code = info.get("ExitCode")
            return int(code) if code is not None and not info.get("Running") else None
        time.sleep(0.01)


def exec_in(
    container: Container,
    argv: Sequence[str],
    whitelist: Sequence[str],
    *,
    timeout: float = DEFAULT_TIMEOUT,
    output_cap: int = DEFAULT_CAP,
    workdir: str | None = None,
    user: str | None = None,
) -> ExecResult:
    """Run ``argv`` in ``container`` if ``argv[0]`` is whitelisted (``rejected_args`` otherwise)."""
    check_argv(argv, whitelist)
    check_limits(timeout, output_cap)
    name = container.name or container.id or "?"
    # No re-inspect: the engine refuses an exec on a stopped container (409, mapped to
    # container_not_running) anyway; this only gives the clearer message early.
    require_running(container, refresh=False)
    api: docker.APIClient = container.client.api
    out, err = CappedBuffer(output_cap), CappedBuffer(output_cap)
    t0 = time.perf_counter()
    with docker_errors(container=name):
        exec_id = api.exec_create(
            container.id,
            list(argv),
            stdout=True,
            stderr=True,
            stdin=False,
            tty=False,
            workdir=workdir,
            user=user or "",
        )["Id"]
        stream = api.exec_start(exec_id, stream=True, demux=True)
    chunks: queue.Queue[Any] = queue.Queue()
    reader = threading.Thread(target=_pump, args=(stream, chunks), daemon=True, name=f"exec-{name}")
    reader.start()
    deadline = time.monotonic() + timeout
    timed_out = False
    with docker_errors(container=name):
        while True:
            left = deadline - time.monotonic()
            try:
                item = chunks.get(timeout=max(left, 0.0)) if left > 0 else chunks.get_nowait()
            except queue.Empty:
                timed_out = True
                _kill_exec(api, exec_id)
                break
            if item is None:
                break
            if isinstance(item, Exception):
                raise item
            o, e = item
            if o:
                out.feed(o)
            if e:
                err.feed(e)
        if timed_out:
            # The kill ends the stream; drain what came before it, then stop listening.
            reader.join(timeout=2.0)
            stream.close()
            while not chunks.empty():
                item = chunks.get_nowait()
                if isinstance(item, tuple):
                    if item[0]:
                        out.feed(item[0])
                    if item[1]:
                        err.feed(item[1])
        code = _exit_code(api, exec_id)
    so, se = out.result(), err.result()
    return ExecResult(
        container=name,
        argv=list(argv),
        exit_code=code,
        timed_out=timed_out,
        duration_ms=round((time.perf_counter() - t0) * 1000.0, 3),
        stdout=so.text,
        stderr=se.text,
        stdout_truncated=so.truncated,
        stderr_truncated=se.truncated,
        stdout_bytes=so.total,
        stderr_bytes=se.total,
    )
