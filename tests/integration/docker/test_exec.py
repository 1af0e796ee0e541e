"""docker_container_exec against a real engine: whitelist, exit codes, timeout, cap, errors."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from meshagents.errors import FnError
from meshagents.runtime.api import call
from tests.testbed.docker_engine import DockerEngine

pytestmark = [pytest.mark.integration, pytest.mark.root]

WL = ["echo", "ls", "sh", "sleep", "seq", "/bin/cat"]


def _exec(eng: DockerEngine, container: Any, argv: list[str], **kw: Any) -> Any:
    kw.setdefault("whitelist", WL)
    return call(
        "docker_container_exec", docker_host=eng.docker_host, container=container.name, argv=argv, **kw
    )


def _exec_ids(container: Any) -> list[str]:
    container.reload()
    return list(container.attrs.get("ExecIDs") or [])


def test_whitelisted_exec_returns_output_and_exit_code(
    docker_engine: DockerEngine, sleeper: Any, state_dir: Path
) -> None:
    r = _exec(docker_engine, sleeper, ["echo", "hello", "mesh"])
    assert (r.exit_code, r.stdout, r.stderr, r.timed_out) == (0, "hello mesh\n", "", False)
    r = _exec(docker_engine, sleeper, ["sh", "-c", "echo out; echo err >&2; exit 3"])
    assert (r.exit_code, r.stdout, r.stderr) == (3, "out\n", "err\n")
    r = _exec(docker_engine, sleeper, ["/bin/cat", "/etc/group"])
    assert r.exit_code == 0 and "root:x:0:" in r.stdout
    r = _exec(docker_engine, sleeper, ["ls", "/no/such/dir"])
    assert r.exit_code != 0 and "No such file" in r.stderr
    r = _exec(docker_engine, sleeper, ["sh", "-c", "id -u; pwd"], user="nobody", workdir="/tmp")
    assert r.stdout == "65534\n/tmp\n"


def test_non_whitelisted_exec_is_refused_and_does_not_run(
    docker_engine: DockerEngine, sleeper: Any, state_dir: Path
) -> None:
    before = _exec_ids(sleeper)
    for argv in (["touch", "/tmp/pwned"], ["/bin/touch", "/tmp/pwned"], ["./sh", "-c", "touch /tmp/pwned"]):
        with pytest.raises(FnError) as err:
            _exec(docker_engine, sleeper, argv)
        assert err.value.code == "rejected_args"
    # `cat` is whitelisted only as /bin/cat: a bare `cat` is another executable.
    with pytest.raises(FnError) as err:
        _exec(docker_engine, sleeper, ["cat", "/etc/passwd"])
    assert err.value.code == "rejected_args"
    # Proof it did not run: the engine never created an exec, and no side-effect file.
    assert _exec_ids(sleeper) == before
    check = _exec(docker_engine, sleeper, ["ls", "-a", "/tmp"])
    assert check.exit_code == 0 and "pwned" not in check.stdout


def test_exec_timeout_kills_the_command(docker_engine: DockerEngine, sleeper: Any, state_dir: Path) -> None:
    t0 = time.monotonic()
    r = _exec(docker_engine, sleeper, ["sh", "-c", "echo started; sleep 31"], timeout=0.5)
    took = time.monotonic() - t0
    assert r.timed_out is True
    assert r.stdout == "started\n"
    assert took < 5, took
    assert r.exit_code == 137  # SIGKILL
    # Nothing of it is left running in the container: not the shell, not its child.
    ps = _exec(docker_engine, sleeper, ["ps", "-o", "args"], whitelist=["ps"])
    assert "sleep 31" not in ps.stdout, ps.stdout


def test_exec_output_is_capped(docker_engine: DockerEngine, sleeper: Any, state_dir: Path) -> None:
    r = _exec(docker_engine, sleeper, ["seq", "1", "100000"], output_cap=1000)
    assert r.exit_code == 0
    assert r.stdout_truncated is True
    assert len(r.stdout.encode()) <= 1000
    assert r.stdout.startswith("1\n2\n3\n")
    assert r.stdout_bytes == len("".join(f"{i}\n" for i in range(1, 100001)))


def test_stopped_and_missing_containers_give_clear_errors(
    docker_engine: DockerEngine, stopped: Any, state_dir: Path
) -> None:
    with pytest.raises(FnError) as err:
        _exec(docker_engine, stopped, ["echo", "hi"])
    assert err.value.code == "container_not_running"
    assert err.value.details["container"] == stopped.name
    with pytest.raises(FnError) as err:
        call(
            "docker_container_exec",
            docker_host=docker_engine.docker_host,
            container=f"nope-{docker_engine.suffix}",
            argv=["echo"],
            whitelist=WL,
        )
    assert err.value.code == "container_not_found"
