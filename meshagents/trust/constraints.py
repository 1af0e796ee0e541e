"""Argument constraints that touch the file system: executable whitelist and path prefixes.

Public API::

    resolve_path(path, cwd="/") -> str           # PathRefused on /proc, NUL, loops
    under_prefix(resolved, prefixes) -> bool
    resolve_executable(argv0, whitelist, search_path, *, resolve=True) -> str   # ExecRefused

Rules (a security reviewer's reading of "no shell ever"):

* ``argv[0]`` is either a bare name (``[A-Za-z0-9._+-]+``) looked up in the
  capability's fixed search path (never the caller's ``PATH``), or an absolute path
  written in normal form. So ``./ls``, ``bin/ls``, ``/bin/../bin/sh``, ``/bin//sh``
  and ``ls;rm`` are refused before anything is looked up.
* The found path matches a whitelist entry ``w`` when both resolve (realpath) to the
  same file **and** have the same base name. The second condition matters for
  multi-call binaries: with busybox, ``/bin/sh`` and ``/bin/ls`` are the same file,
  and whitelisting ``ls`` must not allow ``sh``. The command runs as ``w`` itself.
* Path arguments are resolved component by component like the kernel does
  (symlinks followed, ``..`` applied after them, up to 40 links), and refused if the
  walk ever enters ``/proc`` or ``/dev/fd``: magic links such as ``/proc/self/root``
  or ``/proc/<pid>/root`` point into other mount namespaces and read as ``/``.
  The result must equal or lie under one of the (equally resolved) prefixes.

Residual risk, by design documented in docs/protocol.md: a check at verify time
cannot stop a symlink swapped in between check and use by someone who can write
inside the prefix; the device sandbox binds only the prefixes for that reason.
"""

from __future__ import annotations

import os
import posixpath
import re
import stat
from collections.abc import Iterable

MAX_LINKS = 40
MAGIC = ("/proc", "/dev/fd")
_BARE = re.compile(r"^[A-Za-z0-9_+][A-Za-z0-9._+\-]*$")
_ABS = re.compile(r"^(/[A-Za-z0-9._+\-]+)+$")


class PathRefused(ValueError):
    pass


class ExecRefused(ValueError):
    pass


_MAGIC_DIRS = tuple(m + "/" for m in MAGIC)


def _is_magic(path: str) -> bool:
    return path in MAGIC or path.startswith(_MAGIC_DIRS)


def normpath(path: str) -> str:
    """``posixpath.normpath(path)``, without its work on an absolute path it returns as
    it is: one with no ``.``/``..`` component, no ``//`` and no trailing ``/`` (every
    path argument of every command comes through here)."""
    if path.startswith("/") and "/." not in path and "//" not in path and not path.endswith("/"):
        return path
    return posixpath.normpath(path)


def resolve_path(path: str, cwd: str = "/") -> str:
    """The real absolute path ``path`` names, following symlinks; refuses magic file systems."""
    if not path or "\x00" in path:
        raise PathRefused("empty path or NUL byte")
    full = path if path.startswith("/") else posixpath.join(cwd, path)
    if _is_magic(normpath(full)):
        raise PathRefused(f"{path!r} is under /proc or /dev/fd")
    # A stack, next component last: a link's target is pushed in front of the rest.
    parts = full.split("/")
    parts.reverse()
    resolved = "/"
    links = 0
    exists = True
    while parts:
        part = parts.pop()
        if part in ("", "."):
            continue
        if part == "..":
            if not exists:
                # Lexically this climbs back to where links may be (`a/../out` with no `a`
                # would be judged without following `out`); the kernel would refuse it anyway.
                raise PathRefused(f"{path!r}: '..' after a component that does not exist")
            resolved = posixpath.dirname(resolved) or "/"
            continue
        candidate = resolved + part if resolved == "/" else resolved + "/" + part
        if _is_magic(candidate):
            raise PathRefused(f"{path!r} passes through {candidate}")
        if exists:
            try:
                st = os.lstat(candidate)
            except (FileNotFoundError, NotADirectoryError):
                exists = False  # nothing below can be a symlink: finish lexically
            except OSError as exc:
                raise PathRefused(f"{path!r}: cannot inspect {candidate}: {exc.strerror}") from exc
            else:
                if stat.S_ISLNK(st.st_mode):
                    links += 1
                    if links > MAX_LINKS:
                        raise PathRefused(f"{path!r}: too many symbolic links")
                    target = os.readlink(candidate)
                    if target.startswith("/"):
                        resolved = "/"
                    parts.extend(reversed(target.split("/")))
                    continue
        resolved = candidate
    return resolved


def under_prefix(resolved: str, prefixes: Iterable[str]) -> bool:
    for prefix in prefixes:
        try:
            real_prefix = resolve_path(prefix)
        except PathRefused:
            continue
        if real_prefix == "/" or resolved == real_prefix or resolved.startswith(real_prefix + "/"):
            return True
    return False


def _normal_absolute(argv0: str) -> bool:
    return bool(_ABS.fullmatch(argv0)) and posixpath.normpath(argv0) == argv0 and "/./" not in argv0 + "/" \
        and not any(p in (".", "..") for p in argv0.split("/"))


def resolve_executable(
    argv0: str, whitelist: Iterable[str], search_path: Iterable[str], *, resolve: bool = True
) -> str:
    """The whitelist entry ``argv0`` stands for, or ExecRefused.

    With ``resolve=False`` (another file system, e.g. inside a container) only exact
    whitelist paths and bare names equal to an entry's base name are accepted (several
    entries of one name: the first in search-path order).
    """
    allowed = whitelist if type(whitelist) is tuple else tuple(whitelist)
    if not allowed:
        raise ExecRefused("no executables are whitelisted")
    if "\x00" in argv0:
        raise ExecRefused("NUL byte in argv[0]")
    if _BARE.fullmatch(argv0) and argv0 not in (".", ".."):
        if not resolve:
            # Every match is whitelisted (e.g. /usr/bin/ls and /bin/ls, for merged and
            # split /usr alike): take the one the search path would find first.
            matches = [w for w in allowed if posixpath.basename(w) == argv0]
            if not matches:
                raise ExecRefused(f"{argv0!r} names no whitelisted executable")
            order = {d: i for i, d in enumerate(search_path)}
            return min(matches, key=lambda w: (order.get(posixpath.dirname(w), len(order)), matches.index(w)))
        found = None
        for directory in search_path:
            candidate = directory + "/" + argv0
            try:
                mode = os.stat(candidate).st_mode
            except OSError:
                continue
            if stat.S_ISREG(mode) and mode & 0o111:
                found = candidate
                break
        if found is None:
            raise ExecRefused(f"{argv0!r} not found in the capability's search path")
    elif _normal_absolute(argv0):
        found = argv0
        if not resolve:
            if found in allowed:
                return found
            raise ExecRefused(f"{argv0!r} is not whitelisted")
    else:
        raise ExecRefused(f"{argv0!r}: argv[0] must be a bare name or a normalised absolute path")
    if found in allowed:  # the very path the operator wrote: no need to resolve links
        return found
    real = os.path.realpath(found)
    for entry in allowed:
        if posixpath.basename(entry) == posixpath.basename(found) and os.path.realpath(entry) == real:
            return entry
    raise ExecRefused(f"{argv0!r} ({found}) is not whitelisted")
