"""List containers with a small, stable shape for the bot and the manifest tools."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import docker

from meshagents.docker.errors import docker_errors
from meshagents.errors import FnError

#: Filters the engine's list API accepts (docker 20.10); anything else is refused up front.
KNOWN_FILTERS = frozenset(
    {
        "ancestor", "before", "expose", "exited", "health", "id", "isolation", "is-task",
        "label", "name", "network", "publish", "since", "status", "volume",
    }
)  # fmt: skip


@dataclass(frozen=True)
class ContainerInfo:
    name: str
    id: str
    short_id: str
    image: str
    status: str
    labels: dict[str, str] = field(default_factory=dict)
    created: str = ""


def normalize_filters(filters: Mapping[str, Any] | None) -> dict[str, list[str]]:
    """Check filter names and make every value a list of strings (``rejected_args`` if bad)."""
    out: dict[str, list[str]] = {}
    for key, value in (filters or {}).items():
        if key not in KNOWN_FILTERS:
            raise FnError("rejected_args", f"unknown container filter {key!r}", known=sorted(KNOWN_FILTERS))
        values = [value] if isinstance(value, str | int) and not isinstance(value, bool) else value
        if not isinstance(values, list) or not all(isinstance(v, str | int) for v in values):
            raise FnError("rejected_args", f"filter {key!r} must be a string or a list of strings")
        out[key] = [str(v) for v in values]
    return out


def info_of(row: Mapping[str, Any]) -> ContainerInfo:
    """A row of the engine's list API (one round trip for all containers)."""
    names = row.get("Names") or [""]
    cid = str(row.get("Id", ""))
    return ContainerInfo(
        name=str(names[0]).lstrip("/"),
        id=cid,
        short_id=cid[:12],
        image=str(row.get("Image", "")),
        status=str(row.get("State", "")),
        labels=dict(row.get("Labels") or {}),
        created=str(row.get("Created", "")),
    )


def list_containers(
    client: docker.DockerClient, *, include_stopped: bool = False, filters: Mapping[str, Any] | None = None
) -> list[ContainerInfo]:
    """Containers of the engine, running only unless ``include_stopped``, sorted by name."""
    wanted = normalize_filters(filters)
    with docker_errors():
        rows = client.api.containers(all=include_stopped, filters=wanted)
    return sorted((info_of(r) for r in rows), key=lambda i: i.name)
