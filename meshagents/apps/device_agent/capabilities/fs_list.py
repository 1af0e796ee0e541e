"""``fs.list``: the entries of one directory (the path ``decide()`` resolved under a prefix),
opened with :mod:`safeopen` so a symlink swapped in after the check is not followed."""

from __future__ import annotations

import os
import stat
from typing import Any

from meshagents.apps.device_agent.capabilities import safeopen
from meshagents.apps.device_agent.capabilities.base import CapResult, Context, Handler, OfferFacts, cap_text
from meshagents.capabilities.fs_list import SPEC
from meshagents.trust.manifest import Decision

MAX_ENTRIES = 10_000


def run(decision: Decision, ctx: Context) -> CapResult:
    path = decision.path
    if path is None:
        return CapResult("error", "fs.list needs a path")
    try:
        fd = safeopen.open_dir(path)
    except safeopen.Swapped as exc:
        return CapResult("error", f"refused: {exc.strerror}\n", detail="path_swapped")
    except OSError as exc:
        return CapResult("error", f"cannot list {path}: {exc.strerror}", detail=str(exc.strerror))
    lines = []
    try:
        names = sorted(os.listdir(fd))
        for name in names[:MAX_ENTRIES]:
            try:
                st = os.stat(name, dir_fd=fd, follow_symlinks=False)
            except OSError:
                lines.append(f"?  {'':>10}  {name}")
                continue
            kind = "d" if stat.S_ISDIR(st.st_mode) else "l" if stat.S_ISLNK(st.st_mode) else "-"
            lines.append(f"{kind}  {st.st_size:>10}  {name}")
    except OSError as exc:
        return CapResult("error", f"cannot list {path}: {exc.strerror}", detail=str(exc.strerror))
    finally:
        os.close(fd)
    if len(names) > MAX_ENTRIES:
        lines.append(f"... {len(names) - MAX_ENTRIES} more entries")
    text, cut = cap_text("\n".join(lines) + ("\n" if lines else ""), decision.output_cap_bytes)
    return CapResult("ok", text, 0, cut, f"{len(names)} entries")


def offer(facts: OfferFacts) -> list[dict[str, Any]]:
    return facts.under(SPEC.name, facts.listed, "list directories under {}",
                       timeout_s=10, output_cap_bytes=65536)


HANDLER = Handler(SPEC, lambda decision, args, ctx: run(decision, ctx), offer)
