"""Stage stamps of one request across processes, for the benchmarks' waterfall.

Public API::

    ENV = "MESHAGENTS_TRACE"        # a file path: tracing on in every process that inherits it
    enable(path)                     # on from now (and for children started later); None: off
    enabled() -> bool
    stamp(stage, rid, **extra)       # one JSON line appended to that file; a no-op when off
    read(path) -> list[dict]         # the stamps written, in file order (torn lines skipped)
    waterfall(records, stages) -> list[(stage, [seconds since the previous stage, per request])]
    COMMAND_STAGES, SIDE_STAGES      # the stages of one command, as the apps stamp them
    APPROVAL_STAGES                  # an approved command, from the operator's 👍
    report(records, floor=None, stages=COMMAND_STAGES, side=SIDE_STAGES) -> list[str]
                                     # the waterfall as printed lines (p50/p95 ms)

Why: a command crosses four processes (operator, bot, device agent, and Synapse between
them); only stamps with one clock show where its time goes. The processes of a rig share
one machine, so the wall clock (``time.time_ns``) orders stamps across them; each stamp
also carries the writer's monotonic clock for gaps inside one process. Off by default:
``stamp`` is one check of a module global; nothing reaches any log. On, each stamp is one
``write(2)`` of a line shorter than ``PIPE_BUF`` to a file opened ``O_APPEND``, so lines
of concurrent writers never interleave.

Keys: stages before the bot names the request carry the command's event id as ``rid``;
the bot's ``bot.decided`` stamp carries both (``rid`` and ``event``), which joins them.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

ENV = "MESHAGENTS_TRACE"

_fd: int | None = None


def enable(path: str | os.PathLike[str] | None) -> None:
    """Stamp into ``path`` from now on (None: off). Children started later inherit it
    through ``ENV``; this process and the apps call it at import with that variable."""
    global _fd
    if _fd is not None:
        with contextlib.suppress(OSError):
            os.close(_fd)
        _fd = None
    if path:
        os.environ[ENV] = os.fspath(path)
    else:
        os.environ.pop(ENV, None)
    try:
        _fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600) if path else None
    except OSError:
        _fd = None  # tracing is a measurement aid: never a reason for an app not to start


def enabled() -> bool:
    return _fd is not None


if os.environ.get(ENV):
    enable(os.environ[ENV])


def stamp(stage: str, rid: str | None, **extra: Any) -> None:
    """Record that request ``rid`` reached ``stage`` now (only when tracing is on)."""
    if _fd is None or not rid:
        return
    rec = {"stage": stage, "rid": rid, "wall_ns": time.time_ns(), "mono_ns": time.monotonic_ns(),
           "pid": os.getpid(), **extra}
    with contextlib.suppress(OSError):
        os.write(_fd, (json.dumps(rec, separators=(",", ":")) + "\n").encode())


def read(path: Path) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if not path.exists():
        return out
    for line in path.read_text(errors="replace").splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if isinstance(rec, dict) and isinstance(rec.get("stage"), str) and type(rec.get("wall_ns")) is int:
            out.append(rec)
    return out


def by_request(records: Iterable[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """request id -> stage -> wall_ns (first stamp of a stage wins); event ids joined to the
    request id the bot gave them (``bot.decided``)."""
    recs = list(records)
    alias = {str(r["event"]): str(r["rid"])
             for r in recs if r.get("stage") == "bot.decided" and r.get("event")}
    out: dict[str, dict[str, int]] = {}
    for r in recs:
        rid = alias.get(str(r.get("rid")), str(r.get("rid")))
        out.setdefault(rid, {}).setdefault(str(r["stage"]), int(r["wall_ns"]))
    return out


def waterfall(
    records: Iterable[dict[str, Any]], stages: Sequence[str]
) -> list[tuple[str, list[float]]]:
    """Per stage, the seconds from the previous stage (in ``stages`` order) for every request
    that has both; the first stage's list is the whole span first -> last stage."""
    reqs = [s for s in by_request(records).values() if stages[0] in s and stages[-1] in s]
    rows: list[tuple[str, list[float]]] = [
        ("total", [(s[stages[-1]] - s[stages[0]]) / 1e9 for s in reqs])
    ]
    for prev, cur in itertools.pairwise(stages):
        rows.append((cur, [(s[cur] - s[prev]) / 1e9 for s in reqs if prev in s and cur in s]))
    return rows


#: The path of one command, in order (the answer's arrival at the bot, which reads the
#: result it carries, runs beside the operator's: SIDE_STAGES).
COMMAND_STAGES = (
    "op.send", "op.sent", "bot.received", "bot.decided", "bot.signed", "bot.sent", "agent.received",
    "agent.verified", "agent.intent", "agent.started", "agent.exited", "agent.outcome",
    "agent.notice_sent", "op.reply",
)  # fmt: skip
SIDE_STAGES = (("agent.notice_sent", "bot.result"),)
#: An approved command from the operator's 👍 (stamped by the bench under the command's
#: event id) to the device's answer; ``agent.approvals``: the device read A, R and the
#: events between them from the homeserver.
APPROVAL_STAGES = (
    "op.approve", "bot.decided", "bot.signed", "bot.sent", "agent.received", "agent.approvals",
    "agent.verified", "agent.intent", "agent.started", "agent.exited", "agent.outcome",
    "agent.notice_sent", "op.reply",
)  # fmt: skip


def _ms(xs: Sequence[float], q: float) -> float:
    ys = sorted(xs)
    return ys[min(len(ys) - 1, int(len(ys) * q))] * 1000 if ys else float("nan")


def report(
    records: Sequence[dict[str, Any]],
    floor: Sequence[float] | None = None,
    stages: Sequence[str] = COMMAND_STAGES,
    side: Sequence[tuple[str, str]] = SIDE_STAGES,
) -> list[str]:
    """The waterfall of ``records`` as lines: p50/p95 ms per stage from the one before."""
    lines = ["waterfall (ms from the previous stage; wall clock across processes):",
             f"  {'stage':40s} {'p50':>8s} {'p95':>8s}   n"]  # fmt: skip
    for stage, xs in waterfall(records, stages):
        lines.append(f"  {stage:40s} {_ms(xs, 0.5):8.1f} {_ms(xs, 0.95):8.1f}   {len(xs)}")
    reqs = by_request(records)
    for a, b in side:
        xs = [(s[b] - s[a]) / 1e9 for s in reqs.values() if a in s and b in s]
        lines.append(f"  {a + ' -> ' + b:40s} {_ms(xs, 0.5):8.1f} {_ms(xs, 0.95):8.1f}   {len(xs)}")
    if floor is not None:
        name = "bare nio echo (floor, same run)"
        lines.append(f"  {name:40s} {_ms(floor, 0.5):8.1f} {_ms(floor, 0.95):8.1f}   {len(floor)}")
    return lines
