"""The docker.* capabilities through the Docker layer's catalog functions, on a real
engine in its own network namespace: list, exec of a whitelisted program, logs; a
container or program the manifest does not name is refused before the engine."""

from __future__ import annotations

from pathlib import Path

import pytest

from meshagents.apps.device_agent.capabilities.base import Context
from meshagents.apps.device_agent.pipeline import Pipeline
from tests.testbed.agent_rig import make_rig
from tests.testbed.docker_engine import DockerEngine, docker_engine  # noqa: F401 - re-exported fixture
from tests.testbed.host import require_root

pytestmark = pytest.mark.integration


def test_docker_capabilities(docker_engine: DockerEngine, state_dir: Path, tmp_path: Path) -> None:  # noqa: F811
    require_root()
    c = docker_engine.run(
        "sh",
        "-c",
        "echo line-one; echo line-two; exec sleep 3600",
        labels={"meshagents.test": docker_engine.suffix},
    )
    other = docker_engine.run("sleep", "3600", labels={"meshagents.test": docker_engine.suffix})
    try:
        caps = [
            {"name": "docker.container.list", "values": {"container": [c.name]}, "limits": {"all": 1}},
            {
                "name": "docker.container.exec.echo",
                "executables": ["/bin/echo"],
                "values": {"container": [c.name]},
            },
            {
                "name": "docker.container.logs",
                "values": {"container": [c.name]},
                "limits": {"tail": 1000, "follow_s": 5},
            },
        ]
        rig = make_rig(tmp_path, capabilities=caps, sandbox=False, docker_host=docker_engine.docker_host)
        pipe = Pipeline(rig.config)
        ctx = Context(sandbox=False, docker_host=docker_engine.docker_host)
        try:
            listed = pipe.process(rig.content("docker.container.list", {}), None, ctx)
            assert listed.status == "ok", listed
            assert c.name in listed.output and other.name not in listed.output  # bounded by the manifest

            ran = pipe.process(
                rig.content(
                    "docker.container.exec.echo", {"container": c.name, "argv": ["echo", "a;b", "$(id)"]}
                ),
                None,
                ctx,
            )
            assert ran.status == "ok", ran
            assert ran.output == "a;b $(id)\n" and ran.exit_code == 0

            for _ in range(50):  # the container's first lines may take a moment to be logged
                logs = pipe.process(
                    rig.content("docker.container.logs", {"container": c.name, "tail": 10}), None, ctx
                )
                if "line-two" in logs.output:
                    break
            assert logs.status == "ok" and "line-one\nline-two" in logs.output

            refused = pipe.process(
                rig.content("docker.container.exec.echo", {"container": other.name, "argv": ["echo", "x"]}),
                None,
                ctx,
            )
            assert refused.status == "rejected_args"
            sh = pipe.process(
                rig.content("docker.container.exec.sh", {"container": c.name, "argv": ["sh", "-c", "id"]}),
                None,
                ctx,
            )
            assert sh.status == "rejected_capability"
            assert pipe.audit.verify().ok
        finally:
            pipe.close()
    finally:
        c.remove(force=True)
        other.remove(force=True)
