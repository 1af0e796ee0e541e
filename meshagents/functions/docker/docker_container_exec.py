"""docker_container_exec: run a whitelisted executable in a running container, bounded in time and output."""

from __future__ import annotations

from meshagents.docker.engine import connect, get_container
from meshagents.docker.execute import DEFAULT_TIMEOUT, ExecResult, check_limits, exec_in
from meshagents.docker.output import DEFAULT_CAP
from meshagents.docker.whitelist import check_argv
from meshagents.runtime.catalog import function


@function(id="docker_container_exec", group="docker", requires=["docker", "root"])
def docker_container_exec(
    container: str,
    argv: list[str],
    whitelist: list[str],
    timeout: float = DEFAULT_TIMEOUT,
    output_cap: int = DEFAULT_CAP,
    workdir: str | None = None,
    user: str | None = None,
    docker_host: str | None = None,
) -> ExecResult:
    """Run argv in the container if argv[0] is in the whitelist; exit code and capped output.

    Args:
        container: the running container's name or id.
        argv: the command, one argument per option: argv[0] is the executable, the rest its arguments (no
            shell; at most 256 arguments, 64 KiB in all).
        whitelist: executables allowed; argv[0] must equal one exactly: a bare name (looked up on the
            container's PATH) or an absolute path, no globbing.
        timeout: seconds before the command is killed (0 < timeout <= 3600).
        output_cap: bytes of stdout and of stderr kept, each (0-16777216); the rest is cut and flagged.
        workdir: working directory inside the container; default: the image's.
        user: user to run as inside the container (name or uid, optionally :group); default: the image's.
        docker_host: the engine to talk to: a socket path (/var/run/docker.sock) or a URL (unix://...,
            tcp://host:2375); default: $DOCKER_HOST, else unix:///var/run/docker.sock.
    """
    # Checked before the engine is even contacted: a refused command never runs.
    check_argv(argv, whitelist)
    check_limits(timeout, output_cap)
    client = connect(docker_host)
    try:
        return exec_in(
            get_container(client, container),
            argv,
            whitelist,
            timeout=timeout,
            output_cap=output_cap,
            workdir=workdir,
            user=user,
        )
    finally:
        client.close()
