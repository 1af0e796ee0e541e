"""docker_container_logs: the last lines of a container's log, optionally followed for a bounded time."""

from __future__ import annotations

import time
from typing import Any

from meshagents.catalog import function
from meshagents.dockerctl import logs
from meshagents.dockerctl.engine import connect, get_container
from meshagents.dockerctl.lines import parse_since
from meshagents.dockerctl.output import DEFAULT_CAP


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
    """Last N log lines (since: unix time, 10m or ISO 8601); follow ends at follow_lines or follow_seconds."""
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
