"""``fs.write``: write ``content`` to ``path`` atomically (temp file in the same
directory, fsync, rename, fsync of the directory), so a reader or a crash never sees
half a file. The path was resolved under a prefix by ``decide()``; the content is a
string of at most ``texts.content`` (default 1 MiB) UTF-8 bytes, checked by ``decide()``. The manifest
generator marks fs.write ``requires_approval`` by default (see profile.py).
"""

from __future__ import annotations

import contextlib
import os
import secrets

from apps.device_agent.capabilities.base import CapResult, Context
from meshagents.trust.manifest import Decision

DEFAULT_MAX_BYTES = 1 << 20


def max_bytes(decision: Decision) -> int:
    cap = decision.capability
    return cap.texts.get("content", DEFAULT_MAX_BYTES) if cap is not None else DEFAULT_MAX_BYTES


def run(decision: Decision, content: str | bytes, ctx: Context) -> CapResult:
    path = decision.path
    if path is None:
        return CapResult("error", "fs.write needs a path")
    # bytes: an uploaded file the agent downloaded and checked itself (apps/device_agent/upload.py)
    data = content.encode("utf-8") if isinstance(content, str) else content
    directory = os.path.dirname(path) or "/"
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{secrets.token_hex(4)}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    except OSError as exc:
        return CapResult("error", f"cannot write in {directory}: {exc.strerror}", detail=str(exc.strerror))
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        return CapResult("error", f"cannot write {path}: {exc.strerror}", detail=str(exc.strerror))
    try:
        dfd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass
    return CapResult("ok", f"wrote {len(data)} bytes to {path}\n", 0, False, f"{len(data)} bytes")
