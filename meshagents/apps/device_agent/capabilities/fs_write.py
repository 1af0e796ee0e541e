"""``fs.write``: write ``content`` to ``path`` atomically (temp file in the same
directory, fsync, rename, fsync of the directory), so a reader or a crash never sees
half a file. The path was resolved under a prefix by ``decide()``; the content is a
string of at most ``texts.content`` (default 1 MiB) UTF-8 bytes, checked by ``decide()``. The manifest
offer marks fs.write ``requires_approval`` by default (:func:`offer`).

The directory is opened with :mod:`safeopen` (no symlink followed on any component),
and the temp file, the rename and the directory fsync all go through that one
directory descriptor: a symlink swapped in after the check cannot redirect the write.
A target that exists keeps its mode (and, for a root agent, its owner); a new file is
0644. A target that became a symlink is refused.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from typing import Any

from meshagents.apps.device_agent.capabilities import safeopen
from meshagents.apps.device_agent.capabilities.base import CapResult, Context, Handler, OfferFacts
from meshagents.capabilities.fs_write import SPEC
from meshagents.trust.manifest import Decision

DEFAULT_MAX_BYTES = 1 << 20


def max_bytes(decision: Decision) -> int:
    cap = decision.capability
    return cap.texts.get("content", DEFAULT_MAX_BYTES) if cap is not None else DEFAULT_MAX_BYTES


def run(decision: Decision, content: str | bytes, ctx: Context) -> CapResult:
    path = decision.path
    if path is None:
        return CapResult("error", "fs.write needs a path")
    # bytes: an uploaded file the agent downloaded and checked itself (meshagents/apps/device_agent/upload.py)
    data = content.encode("utf-8") if isinstance(content, str) else content
    try:
        directory, name = safeopen.split(path)
        dfd = safeopen.open_dir(directory)
    except safeopen.Swapped as exc:
        return CapResult("error", f"refused: {exc.strerror}\n", detail="path_swapped")
    except OSError as exc:
        return CapResult("error", f"cannot write in {path}: {exc.strerror}", detail=str(exc.strerror))
    try:
        return _write(dfd, directory, name, path, data)
    finally:
        os.close(dfd)


def _write(dfd: int, directory: str, name: str, path: str, data: bytes) -> CapResult:
    try:
        old: os.stat_result | None = os.stat(name, dir_fd=dfd, follow_symlinks=False)
    except FileNotFoundError:
        old = None
    except OSError as exc:
        return CapResult("error", f"cannot write {path}: {exc.strerror}", detail=str(exc.strerror))
    if old is not None and not stat.S_ISREG(old.st_mode):
        kind = "a symlink" if stat.S_ISLNK(old.st_mode) else "not a regular file"
        return CapResult("error", f"refused: {path} is {kind}\n", detail="path_swapped")
    tmp = f".{name}.{secrets.token_hex(4)}.tmp"
    try:
        fd = os.open(
            tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644, dir_fd=dfd
        )
    except OSError as exc:
        return CapResult("error", f"cannot write in {directory}: {exc.strerror}", detail=str(exc.strerror))
    try:
        try:
            if old is not None:
                os.fchmod(fd, stat.S_IMODE(old.st_mode))
                if os.geteuid() == 0:
                    with contextlib.suppress(OSError):
                        os.fchown(fd, old.st_uid, old.st_gid)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=dfd)
        return CapResult("error", f"cannot write {path}: {exc.strerror}", detail=str(exc.strerror))
    with contextlib.suppress(OSError):
        os.fsync(dfd)
    return CapResult("ok", f"wrote {len(data)} bytes to {path}\n", 0, False, f"{len(data)} bytes")


def handle(decision: Decision, args: dict[str, Any], ctx: Context) -> CapResult:
    content = args.get("content", "")
    return run(decision, content if isinstance(content, bytes) else str(content), ctx)


def offer(facts: OfferFacts) -> list[dict[str, Any]]:
    # "file": an upload the operator replies `!fs.write <path>` to (device_agent/upload.py)
    return facts.under(SPEC.name, facts.writable, "write files under {}, each with an operator's approval",
                       texts={"content": 1 << 20, "file": 4096}, requires_approval=True, timeout_s=10)


HANDLER = Handler(SPEC, handle, offer)
