"""docker_container_list against a real engine."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from meshagents.errors import FnError
from meshagents.runtime.api import call
from tests.testbed.docker_engine import DockerEngine

pytestmark = [pytest.mark.integration, pytest.mark.root]


def _names(rows: list[Any]) -> set[str]:
    return {r.name for r in rows}


def test_list_shows_the_tests_containers(docker_engine: DockerEngine, state_dir: Path) -> None:
    label = f"meshagents.list={docker_engine.suffix}"
    a = docker_engine.run("sleep", "600", labels={"meshagents.list": docker_engine.suffix, "role": "a"})
    b = docker_engine.run("sleep", "600", labels={"meshagents.list": docker_engine.suffix, "role": "b"})
    done = docker_engine.run("true", labels={"meshagents.list": docker_engine.suffix, "role": "done"})
    done.wait(timeout=10)
    try:
        rows = call("docker_container_list", docker_host=docker_engine.docker_host, filters={"label": label})
        assert _names(rows) == {a.name, b.name}
        by_name = {r.name: r for r in rows}
        assert by_name[a.name].id == a.id
        assert by_name[a.name].short_id == a.id[:12]
        assert by_name[a.name].image == docker_engine.image
        assert by_name[a.name].status == "running"
        assert by_name[a.name].labels == {"meshagents.list": docker_engine.suffix, "role": "a"}

        every = call(
            "docker_container_list",
            docker_host=docker_engine.docker_host,
            filters={"label": label},
            include_stopped=True,
        )
        assert _names(every) == {a.name, b.name, done.name}
        assert {r.name: r.status for r in every}[done.name] == "exited"

        only_b = call(
            "docker_container_list",
            docker_host=docker_engine.docker_host,
            filters={"label": [label, "role=b"]},
        )
        assert _names(only_b) == {b.name}
        by_name_filter = call(
            "docker_container_list", docker_host=docker_engine.docker_host, filters={"name": a.name}
        )
        assert _names(by_name_filter) == {a.name}
    finally:
        for c in (a, b, done):
            c.remove(force=True)


def test_unknown_filter_is_refused_before_the_engine(state_dir: Path) -> None:
    with pytest.raises(FnError) as err:
        call("docker_container_list", docker_host="/nonexistent/docker.sock", filters={"colour": "red"})
    assert err.value.code == "rejected_args"


def test_no_engine_is_docker_unavailable(tmp_path: Path, state_dir: Path) -> None:
    with pytest.raises(FnError) as err:
        call("docker_container_list", docker_host=str(tmp_path / "docker.sock"))
    assert err.value.code == "docker_unavailable"
    # A socket file nobody listens on: refused, same code.
    import socket

    path = tmp_path / "dead.sock"
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(path))
    s.close()
    with pytest.raises(FnError) as err:
        call("docker_container_list", docker_host=f"unix://{path}")
    assert err.value.code == "docker_unavailable"
