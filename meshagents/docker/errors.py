"""Map docker SDK / transport errors to the project's FnError codes.

Codes:
    docker_unavailable     no engine answers at the address (socket missing, refused, timeout)
    container_not_found    no container with that name or id
    container_not_running  the container exists but is not running
    docker_error           any other answer of the engine (kept with its HTTP status)
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import docker.errors
import requests.exceptions

from meshagents.errors import FnError


def map_error(exc: BaseException, *, container: str | None = None) -> FnError:
    """The FnError for a docker SDK or requests exception."""
    if isinstance(exc, FnError):
        return exc
    where = {"container": container} if container is not None else {}
    if isinstance(exc, docker.errors.NotFound):
        if container is not None:
            return FnError("container_not_found", f"no container named {container!r}", **where)
        return FnError("docker_error", f"engine: not found: {exc.explanation}", status=404)
    if isinstance(exc, docker.errors.APIError):
        text = str(exc.explanation or exc)
        if exc.status_code == 409 and "not running" in text:
            return FnError("container_not_running", f"container {container!r} is not running", **where)
        return FnError("docker_error", f"engine: {text}", status=exc.status_code, **where)
    if isinstance(exc, requests.exceptions.RequestException | ConnectionError | OSError):
        return FnError("docker_unavailable", f"docker engine unreachable: {type(exc).__name__}: {exc}")
    if isinstance(exc, docker.errors.DockerException):
        return FnError("docker_unavailable", f"docker engine unusable: {exc}")
    return FnError("docker_error", f"{type(exc).__name__}: {exc}", **where)


@contextmanager
def docker_errors(container: str | None = None) -> Iterator[None]:
    """Re-raise docker / transport errors inside the block as FnError."""
    try:
        yield
    except FnError:
        raise
    except (docker.errors.DockerException, requests.exceptions.RequestException, OSError) as exc:
        raise map_error(exc, container=container) from exc
