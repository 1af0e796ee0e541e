"""Resolve whitelist entries to absolute paths *inside* a container.

The manifest's capabilities list executables as absolute paths (the trust layer's
``Capability.executables``). An operator may write ``ls``; light-mode enrollment
turns that into the path the container's own ``PATH`` finds (``/bin/ls``), checked
against the container's file system through the engine (no exec, so it works on a
stopped container and runs nothing inside it).
"""

from __future__ import annotations

import posixpath
from collections.abc import Sequence
from typing import Any

from docker.models.containers import Container

from meshagents.docker.errors import docker_errors
from meshagents.docker.whitelist import invalid_entries
from meshagents.errors import FnError

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_DIR_BIT = 1 << 31  # Go's os.ModeDir, as the engine reports it


def candidates(name: str, path_env: str | None) -> list[str]:
    """Where a bare ``name`` may live on ``PATH`` (absolute directories only, in order)."""
    if name.startswith("/"):
        return [name]
    dirs = [d for d in (path_env or DEFAULT_PATH).split(":") if d.startswith("/")]
    return [posixpath.join(posixpath.normpath(d), name) for d in dirs]


def path_env(container: Container) -> str | None:
    for item in (container.attrs.get("Config") or {}).get("Env") or []:
        if isinstance(item, str) and item.startswith("PATH="):
            return item[len("PATH=") :]
    return None


def stat(container: Container, path: str) -> dict[str, Any] | None:
    """The engine's stat of ``path`` in the container, or None when absent (a HEAD: no data)."""
    api = container.client.api
    with docker_errors(container=container.name):
        res = api.head(api._url("/containers/{0}/archive", container.id), params={"path": path})
    if res.status_code == 404:
        return None
    with docker_errors(container=container.name):
        api._raise_for_status(res)
    header = res.headers.get("X-Docker-Container-Path-Stat")
    if not header:
        return None
    from docker.utils import decode_json_header

    data = decode_json_header(header)
    return data if isinstance(data, dict) else None


def resolve_executables(container: Container, entries: Sequence[str]) -> list[str]:
    """Absolute in-container paths for ``entries`` (``rejected_args`` naming any not found)."""
    bad = invalid_entries(entries)
    if bad:
        raise FnError("rejected_args", f"whitelist entries that can never match: {bad}", entries=bad)
    env = path_env(container)
    out: list[str] = []
    missing: list[str] = []
    for entry in entries:
        for cand in candidates(entry, env):
            st = stat(container, cand)
            if st is not None and not int(st.get("mode", 0)) & _DIR_BIT:
                out.append(cand)
                break
        else:
            missing.append(entry)
    if missing:
        raise FnError(
            "rejected_args",
            f"not found in container {container.name!r}: {missing}",
            container=container.name,
            missing=missing,
        )
    return sorted(set(out))
