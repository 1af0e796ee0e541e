"""Open a path ``decide()`` resolved without following any symlink on the way.

    open_dir(path) -> fd                 # every component a real directory
    open_file(path, flags, mode=0o600) -> fd
    split(path) -> (parent, name)

``fs.list`` / ``fs.read`` / ``fs.write`` run in the agent process (no sandbox start per
call) and get their safety here instead: the path is the resolved, symlink-free one
the trust core checked under a prefix, and each component is opened relative to the
previous one with ``O_NOFOLLOW`` (``O_DIRECTORY`` for directories). That is what
``openat2(RESOLVE_NO_SYMLINKS)`` does in one call (Python 3.11 has no binding; the
walk works on every kernel): a symlink swapped in between the check and the open, on
any component, makes the open fail with ``ELOOP``/``ENOTDIR`` instead of being followed.
"""

from __future__ import annotations

import contextlib
import errno
import os
import posixpath

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class Swapped(OSError):
    """A component is no longer what the check saw (a symlink or not a directory)."""


def _check(path: str) -> list[str]:
    if not path.startswith("/") or posixpath.normpath(path) != path or "\x00" in path:
        raise OSError(errno.EINVAL, f"{path!r} is not a resolved absolute path")
    return [p for p in path.split("/") if p]


def _step(fd: int, name: str, flags: int, mode: int, whole: str) -> int:
    try:
        return os.open(name, flags, mode, dir_fd=fd)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise Swapped(exc.errno, f"{whole}: {name} changed into a symlink or non-directory") from exc
        raise


def open_dir(path: str) -> int:
    parts = _check(path)
    fd = os.open("/", _DIR)
    try:
        for name in parts:
            nxt = _step(fd, name, _DIR, 0, path)
            os.close(fd)
            fd = nxt
    except BaseException:
        os.close(fd)
        raise
    return fd


def split(path: str) -> tuple[str, str]:
    parts = _check(path)
    if not parts:
        raise OSError(errno.EISDIR, "/ is not a file")
    return "/" + "/".join(parts[:-1]), parts[-1]


def open_file(path: str, flags: int, mode: int = 0o600) -> int:
    parent, name = split(path)
    dfd = open_dir(parent)
    try:
        return _step(dfd, name, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode, path)
    finally:
        with contextlib.suppress(OSError):
            os.close(dfd)
