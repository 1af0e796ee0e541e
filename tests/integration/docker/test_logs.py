"""docker_container_logs against a real engine: tail, since, bounded follow, errors."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from meshagents.docker import logs
from meshagents.docker.engine import connect, get_container
from meshagents.errors import FnError
from meshagents.runtime.api import call
from tests.testbed.docker_engine import DockerEngine

pytestmark = [pytest.mark.integration, pytest.mark.root]


def _wait_lines(c: Any, n: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while len(c.logs().splitlines()) < n:
        assert time.monotonic() < deadline, "container did not write its lines"
        time.sleep(0.05)


@pytest.fixture
def counter(docker_engine: DockerEngine) -> Any:
    """Writes lines 1..49 to stdout, then line50 to stderr, then stays quiet.

    The engine copies stdout and stderr concurrently, so their relative order is only
    kept when apart in time: hence the pause before the stderr line.
    """
    c = docker_engine.run(
        "sh", "-c", "i=1; while [ $i -le 49 ]; do echo line$i; i=$((i+1)); done; "
        "sleep 0.2; echo line50 >&2; exec sleep 3600"
    )  # fmt: skip
    _wait_lines(c, 50)
    yield c
    c.remove(force=True)


@pytest.fixture
def ticker(docker_engine: DockerEngine) -> Any:
    """Writes a numbered line every 50 ms, forever."""
    c = docker_engine.run("sh", "-c", "i=0; while true; do echo tick$i; i=$((i+1)); sleep 0.05; done")
    _wait_lines(c, 1)
    yield c
    c.remove(force=True)


def test_tail_returns_the_last_lines(docker_engine: DockerEngine, counter: Any, state_dir: Path) -> None:
    r = call("docker_container_logs", docker_host=docker_engine.docker_host, container=counter.name, lines=5)
    assert r["lines"] == [f"line{i}" for i in range(46, 51)]
    assert r["followed"] is False and r["truncated"] is False
    every = call(
        "docker_container_logs", docker_host=docker_engine.docker_host, container=counter.name, lines=1000
    )
    assert len(every["lines"]) == 50
    assert set(every["lines"]) == {f"line{i}" for i in range(1, 51)}  # stdout and stderr both


def test_tail_cap_keeps_the_newest_lines(docker_engine: DockerEngine, counter: Any, state_dir: Path) -> None:
    r = call(
        "docker_container_logs",
        docker_host=docker_engine.docker_host,
        container=counter.name,
        lines=50,
        output_cap=20,  # "lineNN\n" is 7 bytes: room for two
    )
    assert r["truncated"] is True
    assert r["lines"] == ["line49", "line50"]


def test_since(docker_engine: DockerEngine, counter: Any, state_dir: Path) -> None:
    host = docker_engine.docker_host
    recent = call("docker_container_logs", docker_host=host, container=counter.name, lines=1000, since="1h")
    assert len(recent["lines"]) == 50
    future = str(int(time.time()) + 3600)
    assert (
        call("docker_container_logs", docker_host=host, container=counter.name, since=future)["lines"] == []
    )
    with pytest.raises(FnError) as err:
        call("docker_container_logs", docker_host=host, container=counter.name, since="yesterday-ish")
    assert err.value.code == "rejected_args"


def test_follow_is_bounded_in_lines(docker_engine: DockerEngine, ticker: Any, state_dir: Path) -> None:
    t0 = time.monotonic()
    r = call(
        "docker_container_logs",
        docker_host=docker_engine.docker_host,
        container=ticker.name,
        lines=0,
        follow=True,
        follow_lines=5,
        follow_seconds=20,
    )
    assert len(r["lines"]) == 5
    assert all(line.startswith("tick") for line in r["lines"])
    nums = [int(line[4:]) for line in r["lines"]]
    assert nums == list(range(nums[0], nums[0] + 5))  # consecutive: nothing lost or doubled
    assert time.monotonic() - t0 < 5


def test_follow_is_bounded_in_time(docker_engine: DockerEngine, counter: Any, state_dir: Path) -> None:
    t0 = time.monotonic()
    r = call(
        "docker_container_logs",
        docker_host=docker_engine.docker_host,
        container=counter.name,
        lines=2,
        follow=True,
        follow_lines=1000,
        follow_seconds=1.0,
    )
    took = time.monotonic() - t0
    assert r["lines"] == ["line49", "line50"]  # the tail, then nothing new on a quiet container
    assert 0.9 <= took < 3, took


def test_follow_generator_closes_the_stream_when_dropped(docker_engine: DockerEngine, ticker: Any) -> None:
    client = connect(docker_engine.docker_host)
    try:
        before = {t.name for t in threading.enumerate()}
        gen = logs.follow(get_container(client, ticker.name), max_lines=1000, max_seconds=30)
        got = [next(gen), next(gen)]
        assert all(g.startswith("tick") for g in got)
        gen.close()  # the bot stops relaying early
        deadline = time.monotonic() + 2
        while any(t.name == f"logs-{ticker.name}" for t in threading.enumerate()):
            assert time.monotonic() < deadline, "reader thread still running after close"
            time.sleep(0.02)
        assert {t.name for t in threading.enumerate()} <= before | {f"logs-{ticker.name}"}
    finally:
        client.close()


def test_follow_ends_when_the_container_ends(docker_engine: DockerEngine, state_dir: Path) -> None:
    c = docker_engine.run("sh", "-c", "echo one; sleep 0.3; echo two")
    try:
        t0 = time.monotonic()
        r = call(
            "docker_container_logs",
            docker_host=docker_engine.docker_host,
            container=c.name,
            lines=10,
            follow=True,
            follow_seconds=20,
        )
        assert r["lines"] == ["one", "two"]
        assert time.monotonic() - t0 < 5
    finally:
        c.remove(force=True)


def test_logs_of_missing_container(docker_engine: DockerEngine, stopped: Any, state_dir: Path) -> None:
    with pytest.raises(FnError) as err:
        call(
            "docker_container_logs",
            docker_host=docker_engine.docker_host,
            container=f"gone-{docker_engine.suffix}",
        )
    assert err.value.code == "container_not_found"
    # A stopped container still has its logs: no error.
    r = call("docker_container_logs", docker_host=docker_engine.docker_host, container=stopped.name)
    assert r["lines"] == []
