"""docker_container_logs: the last lines of a container's log, optionally followed for a bounded time."""

from __future__ import annotations

import time
from typing import Any

from meshagents.docker import logs
from meshagents.docker.engine import connect, get_container
from meshagents.docker.lines import parse_since
from meshagents.docker.output import DEFAULT_CAP
from meshagents.runtime.catalog import function


@function(id="docker_container_logs", group="docker", requires=["docker"])
def docker_container_logs(
    container: str,
    lines: int = 100,
    since: str | None = None,
    follow: bool = False,
    follow_seconds: float = 10.0,
    follow_lines: int = 100,
    timestamps: bool = False,
    output_cap: int = DEFAULT_CAP,
    docker_host: str | None = None,
) -> dict[str, Any]:
    """Last N log lines (since: unix time, 10m or ISO 8601); follow ends at follow_lines or follow_seconds.

    Args:
        container: the container's name or id.
        lines: how many of the last log lines to return (0-10000); when following, the lines shown before the
            new ones.
        since: only lines from this time on: unix seconds (1700000000), relative (30s, 10m, 2h, 1d) or ISO
            8601 with a time zone (2026-12-01T10:00:00Z); default: no time limit.
        follow: keep reading new lines until follow_lines lines or follow_seconds seconds.
        follow_seconds: when following, the longest time to read, in seconds (0 < s <= 3600).
        follow_lines: when following, the most lines to read (0-10000), counting the last lines shown first.
        timestamps: prefix each line with the engine's timestamp.
        output_cap: bytes of log text kept; past it the oldest lines are dropped and truncated is set.
        docker_host: the engine to talk to: a socket path (/var/run/docker.sock) or a URL (unix://...,
            tcp://host:2375); default: $DOCKER_HOST, else unix:///var/run/docker.sock.
    """
    since_ts = parse_since(since, time.time())
    logs.check_bounds(lines, follow_seconds if follow else None)
    logs.check_bounds(follow_lines)
    client = connect(docker_host)
    try:
        c = get_container(client, container)
        if not follow:
            t = logs.tail(c, lines=lines, since=since_ts, timestamps=timestamps, output_cap=output_cap)
            return {"container": t.container, "lines": t.lines, "truncated": t.truncated, "followed": False}
        t0 = time.monotonic()
        got = list(
            logs.follow(
                c,
                max_lines=follow_lines,
                max_seconds=follow_seconds,
                tail_lines=lines,
                since=since_ts,
                timestamps=timestamps,
            )
        )
        kept, truncated = logs.cap_lines(got, output_cap)
        return {
            "container": c.name,
            "lines": kept,
            "truncated": truncated,
            "followed": True,
            "followed_seconds": round(time.monotonic() - t0, 3),
        }
    finally:
        client.close()
