"""``camera.snapshot``: one JPEG from the first V4L2 camera through ffmpeg.

Offered only where a camera exists (``/dev/video*``) and ffmpeg is installed:
:func:`available` is what the offer asks, so a device without a camera has
no such capability in its signed manifest and the agent refuses the request as
``rejected_capability``. The picture is kept in the agent's ``snapshots`` directory;
the result names it with its size and sha256 (uploading it to the room is left to a
later version).
"""

from __future__ import annotations

import glob
import hashlib
import shutil
import time
from typing import Any

from meshagents.apps.device_agent import sandbox
from meshagents.apps.device_agent.capabilities.base import CapResult, Context, Handler, OfferFacts
from meshagents.capabilities.camera_snapshot import SPEC
from meshagents.trust.manifest import Decision


def devices() -> list[str]:
    return sorted(glob.glob("/dev/video*"))


def available() -> bool:
    return bool(devices()) and shutil.which("ffmpeg", path=sandbox.SAFE_PATH) is not None


def run(decision: Decision, ctx: Context) -> CapResult:
    cams = devices()
    ffmpeg = shutil.which("ffmpeg", path=sandbox.SAFE_PATH)
    if not cams or ffmpeg is None:
        return CapResult("error", "camera not available on this device (no /dev/video* or no ffmpeg)\n")
    ctx.snapshots_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    out = ctx.snapshots_dir / f"snapshot-{int(time.time() * 1000)}.jpg"
    argv = [
        ffmpeg,
        "-hide_banner",
        "-loglevel",
        "error",
        "-f",
        "v4l2",
        "-i",
        cams[0],
        "-frames:v",
        "1",
        "-y",
        str(out),
    ]
    plan = sandbox.SandboxPlan(
        argv=argv, cwd=str(ctx.snapshots_dir), writable=(str(ctx.snapshots_dir),), devices=(cams[0],)
    )
    res = sandbox.run(plan, timeout_s=decision.timeout_s, output_cap=4096, use_bwrap=ctx.sandbox)
    if res.exit_code != 0 or not out.is_file():
        return CapResult("error", "ffmpeg failed: " + res.output.decode("utf-8", "replace"), res.exit_code)
    data = out.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    return CapResult(
        "ok",
        f"snapshot {out.name}: {len(data)} bytes, sha256 {digest}\n",
        0,
        data={"file": str(out), "bytes": len(data), "sha256": digest},
    )


def offer(facts: OfferFacts) -> list[dict[str, Any]]:
    present = available() if facts.camera_available is None else facts.camera_available
    if facts.minimal or not present:
        return []
    return [{"name": SPEC.name, "description": "one JPEG from the first camera", "timeout_s": 20,
             "output_cap_bytes": 4096}]


HANDLER = Handler(SPEC, lambda decision, args, ctx: run(decision, ctx), offer)
