"""docker_container_list: the engine's containers (name, id, image, status, labels), filtered."""

from __future__ import annotations

from typing import Any

from meshagents.docker.engine import connect
from meshagents.docker.listing import ContainerInfo, list_containers, normalize_filters
from meshagents.runtime.catalog import function


@function(id="docker_container_list", group="docker", requires=["docker"])
def docker_container_list(
    include_stopped: bool = False,
    filters: dict[str, Any] | None = None,
    docker_host: str | None = None,
) -> list[ContainerInfo]:
    """List containers with name, id, image, status and labels; filters as the engine's (JSON).

    Args:
        include_stopped: also list containers that are not running.
        filters: the engine's list filters as a JSON object, e.g. '{"label": "app=web", "status":
            ["running"]}' (names: ancestor, before, expose, exited, health, id, isolation, is-task, label,
            name, network, publish, since, status, volume).
        docker_host: the engine to talk to: a socket path (/var/run/docker.sock) or a URL (unix://...,
            tcp://host:2375); default: $DOCKER_HOST, else unix:///var/run/docker.sock.
    """
    normalize_filters(filters)  # refuse bad filters before touching the engine
    client = connect(docker_host)
    try:
        return list_containers(client, include_stopped=include_stopped, filters=filters)
    finally:
        client.close()
