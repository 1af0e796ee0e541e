"""Write a file only when its content, mode or owner differ (the host side of idempotence).

Each call reports what it changed (``[]`` when nothing), so a re-run with the same
flags can say "unchanged" and restart nothing; a rewrite is atomic (temporary file in
the same directory, then rename), so a crash never leaves half a config.
"""

from __future__ import annotations

import grp
import os
import pwd
from pathlib import Path


def ids(owner: str, group: str | None = None) -> tuple[int, int]:
    uid = pwd.getpwnam(owner).pw_uid
    gid = grp.getgrnam(group).gr_gid if group else pwd.getpwnam(owner).pw_gid
    return uid, gid


def ensure_dir(path: Path, mode: int, owner: str = "root", group: str | None = None) -> list[str]:
    changed: list[str] = []
    if not path.is_dir():
        path.mkdir(parents=True, mode=mode)
        changed.append(f"{path}: created")
    st = path.stat()
    if st.st_mode & 0o7777 != mode:
        os.chmod(path, mode)
        changed.append(f"{path}: mode")
    uid, gid = ids(owner, group)
    if (st.st_uid, st.st_gid) != (uid, gid):
        os.chown(path, uid, gid)
        changed.append(f"{path}: owner")
    return changed


def ensure_file(
    path: Path, content: str | bytes, mode: int = 0o644, owner: str = "root", group: str | None = None
) -> list[str]:
    """Make ``path`` hold ``content`` with that mode and owner; what changed (content, mode, owner)."""
    data = content.encode() if isinstance(content, str) else content
    uid, gid = ids(owner, group)
    changed: list[str] = []
    try:
        same = path.read_bytes() == data
    except FileNotFoundError:
        same = False
    if not same:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.meshagents-tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, mode)
        os.chown(tmp, uid, gid)
        os.replace(tmp, path)
        return [f"{path}: written"]
    st = path.stat()
    if st.st_mode & 0o7777 != mode:
        os.chmod(path, mode)
        changed.append(f"{path}: mode")
    if (st.st_uid, st.st_gid) != (uid, gid):
        os.chown(path, uid, gid)
        changed.append(f"{path}: owner")
    return changed


def chown_tree(root: Path, owner: str, group: str | None = None) -> list[str]:
    """Give every file under ``root`` to ``owner`` (files a root-run step made there); what it fixed."""
    uid, gid = ids(owner, group)
    fixed: list[str] = []
    if not root.exists():
        return fixed
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [".", *dirnames, *filenames]:
            p = Path(dirpath) if name == "." else Path(dirpath) / name
            st = p.lstat()
            if (st.st_uid, st.st_gid) != (uid, gid):
                os.lchown(p, uid, gid)
                fixed.append(str(p))
    if not fixed:
        return []
    # name them (the first few): a root-run step that leaves files behind is a bug to find
    shown = ", ".join(os.path.relpath(p, root) for p in fixed[:3]) + (", ..." if len(fixed) > 3 else "")
    return [f"{root}: owner of {len(fixed)} path(s) ({shown})"]
