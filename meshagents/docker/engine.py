"""Connect to a Docker engine and fetch containers, with errors mapped to FnError."""

from __future__ import annotations

import os

import docker
from docker.models.containers import Container

from meshagents.docker.errors import docker_errors
from meshagents.errors import FnError

DEFAULT_HOST = "unix:///var/run/docker.sock"
#: Seconds for one API round trip; exec and follow bound their own waiting.
API_TIMEOUT = 30
API_VERSION = "1.40"


def resolve_host(docker_host: str | None = None) -> str:
    """The engine URL: an explicit socket path or URL, else DOCKER_HOST, else the default socket."""
    value = docker_host or os.environ.get("DOCKER_HOST") or DEFAULT_HOST
    if value.startswith("/"):
        return "unix://" + value
    if "://" not in value:
        raise FnError("bad_usage", f"docker host {value!r} is neither a socket path nor a URL")
    return value


def connect(docker_host: str | None = None, *, timeout: int = API_TIMEOUT) -> docker.DockerClient:
    """A client for the engine, checked with a ping (``docker_unavailable`` if none answers)."""
    url = resolve_host(docker_host)
    if url.startswith("unix://") and not os.path.exists(url[len("unix://") :]):
        raise FnError("docker_unavailable", f"no docker socket at {url[len('unix://') :]}", docker_host=url)
    with docker_errors():
        # A fixed API version instead of the SDK's negotiation: the engine's /version
        # answer took ~12 ms here, /_ping ~1.5 ms. 1.40 (Docker 19.03) has all we use
        # and newer engines still accept it.
        client = docker.DockerClient(base_url=url, timeout=timeout, version=API_VERSION)
        try:
            client.ping()
        except BaseException:
            client.close()
            raise
    return client


def get_container(client: docker.DockerClient, name: str) -> Container:
    """The container with this name or id (``container_not_found`` otherwise)."""
    if not name or "/" in name.strip("/"):
        raise FnError("container_not_found", f"no container named {name!r}", container=name)
    with docker_errors(container=name):
        return client.containers.get(name)


def require_running(container: Container, *, refresh: bool = True) -> None:
    """Raise ``container_not_running`` unless the container is running (re-inspected if ``refresh``)."""
    if refresh:
        with docker_errors(container=container.name):
            container.reload()
    if container.status != "running":
        raise FnError(
            "container_not_running",
            f"container {container.name!r} is {container.status}, not running",
            container=container.name,
            status=container.status,
        )
