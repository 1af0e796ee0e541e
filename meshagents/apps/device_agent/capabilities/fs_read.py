"""``fs.read``: one regular file, at most ``max_bytes`` (argument, up to the limit the
manifest gives) and at most the capability's output cap. Opened with
:mod:`safeopen` (no symlink followed on any component: a swap after the check fails)."""

from __future__ import annotations

import os
import stat
from typing import Any

from meshagents.apps.device_agent.capabilities import safeopen
from meshagents.apps.device_agent.capabilities.base import (
    TRUNCATION_NOTE,
    CapResult,
    Context,
    Handler,
    OfferFacts,
)
from meshagents.capabilities.fs_read import SPEC
from meshagents.trust.manifest import Decision


def run(decision: Decision, ctx: Context) -> CapResult:
    path = decision.path
    cap = decision.capability
    if path is None or cap is None:
        return CapResult("error", "fs.read needs a path")
    limit = decision.output_cap_bytes
    if "max_bytes" in decision.extra:
        limit = min(limit, int(decision.extra["max_bytes"]))
    elif "max_bytes" in cap.limits:
        limit = min(limit, cap.limits["max_bytes"])
    try:
        fd = safeopen.open_file(path, os.O_RDONLY | os.O_NONBLOCK)
    except safeopen.Swapped as exc:
        return CapResult("error", f"refused: {exc.strerror}\n", detail="path_swapped")
    except OSError as exc:
        return CapResult("error", f"cannot open {path}: {exc.strerror}", detail=str(exc.strerror))
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return CapResult("error", f"{path} is not a regular file")
        data = os.read(fd, limit + 1) if limit >= 0 else b""
    finally:
        os.close(fd)
    truncated = len(data) > limit or st.st_size > limit
    data = data[:limit]
    text = data.decode("utf-8", "replace")
    if truncated:
        text += TRUNCATION_NOTE.format(kept=len(data), total=st.st_size)
    return CapResult(
        "ok",
        text,
        0,
        truncated,
        f"{min(st.st_size, limit)} of {st.st_size} bytes",
        # the exact bytes, for a reply that sends the file itself (meshagents/apps/device_agent/attach.py)
        data={"file_bytes": data, "file_path": path},
    )


def offer(facts: OfferFacts) -> list[dict[str, Any]]:
    return facts.under(SPEC.name, facts.readable, "read files under {} (1 MiB at most)",
                       limits={"max_bytes": 1 << 20}, timeout_s=10, output_cap_bytes=1 << 20)


HANDLER = Handler(SPEC, lambda decision, args, ctx: run(decision, ctx), offer)
