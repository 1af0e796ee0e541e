"""Atomic file writes, the one helper every module that keeps state on disk uses.

A crash (or a second writer) must leave the old file or the new one, never half of one,
and a secret must never sit readable for a moment — so the bytes go to a temporary file
created with its final mode, beside the target (same file system), then ``os.replace``::

    write_atomic(path, text)                      # 0600, fsync'd: keys, seeds, configs
    write_atomic(path, text, mode=0o666)          # the umask decides (like write_text)
    write_atomic(path, data, fsync=False)         # a cache or a file rebuilt at will
    write_private(path, {"a": 1})                 # 0600 JSON, sorted keys, fsync'd
    read_json(path)                               # -> dict, or None when missing
    load_json(path, missing=FnError(...), invalid="code")   # -> the JSON; each failure its own code

The temporary name is ``.<name>.<pid>.tmp``: hidden, ending in ``.tmp`` (ignored by the
WireGuard config repository), and per process so two writers never share one.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from meshagents.errors import FnError


def write_atomic(
    path: Path, data: str | bytes, *, mode: int = 0o600, fsync: bool = True, keep_owner: bool = False
) -> None:
    """Replace ``path`` with ``data`` (text is UTF-8) in one step; ``mode`` applies at
    creation (less the umask), ``fsync`` makes the content durable before the rename.
    ``keep_owner``: as root, the new file gets the old one's owner (a service user reads it)."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    st = path.stat() if keep_owner and path.exists() else None
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(raw)
            fh.flush()
            if fsync:
                os.fsync(fh.fileno())
        if st is not None and os.geteuid() == 0:
            os.chown(tmp, st.st_uid, st.st_gid)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_private(path: Path, data: dict[str, Any]) -> None:
    """Atomically write ``data`` as JSON (sorted keys), mode 0600, fsync'd."""
    write_atomic(path, json.dumps(data, sort_keys=True))


def load_json(path: Path, *, missing: FnError, invalid: str) -> Any:
    """The JSON in ``path``: ``missing`` is raised when there is no such file, FnError ``invalid``
    (naming the path and the reason) when it cannot be read or is not JSON."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise missing from exc
    except (OSError, ValueError) as exc:
        raise FnError(invalid, f"{path}: {exc}") from exc


def read_json(path: Path) -> dict[str, Any] | None:
    """The JSON object in ``path``, or None when there is no such file."""
    if not path.exists():
        return None
    data: dict[str, Any] = json.loads(path.read_text())
    return data
