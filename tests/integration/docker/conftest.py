"""Docker integration tests share one real engine per session (tests/testbed/docker_engine.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.testbed.docker_engine import DockerEngine, docker_engine

__all__ = ["docker_engine", "sleeper", "stopped"]


@pytest.fixture
def sleeper(docker_engine: DockerEngine) -> Iterator[Any]:
    """A running container that just waits, removed after the test."""
    c = docker_engine.run("sleep", "3600", labels={"meshagents.test": docker_engine.suffix})
    yield c
    c.remove(force=True)


@pytest.fixture
def stopped(docker_engine: DockerEngine) -> Iterator[Any]:
    """A container that has exited."""
    c = docker_engine.run("true", labels={"meshagents.test": docker_engine.suffix})
    c.wait(timeout=10)
    c.reload()
    yield c
    c.remove(force=True)
