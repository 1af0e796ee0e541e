"""``shell.exec`` (and ``shell.exec.<program>``, and any capability with an executable
whitelist): run the argv the trust decision resolved, under the sandbox.

Never a shell: argv[0] is the whitelisted absolute path ``decide()`` returned and the
arguments are passed as they were signed, so ``;``, ``$( )``, backticks and newlines
are plain characters. Inside the sandbox the program sees its prefixes (and a declared
cwd) read-only; read-write only when the capability's ``limits`` hold ``write: 1``.
``visible`` paths are added read-only. Network: only when ``limits`` hold ``network: 1``.
"""

from __future__ import annotations

from meshagents.apps.device_agent import sandbox
from meshagents.apps.device_agent.capabilities.base import TRUNCATION_NOTE, CapResult, Context, decode
from meshagents.trust.manifest import Decision


def run(decision: Decision, ctx: Context) -> CapResult:
    cap = decision.capability
    assert cap is not None and decision.argv is not None
    # decide() resolved it inside a prefix (for a capability with prefixes): the one the
    # path arguments were checked against is the one the program runs in.
    cwd = decision.cwd
    dirs = tuple(cap.path_prefixes) + ((cwd,) if cap.cwd else ())
    writes = cap.limits.get("write", 0) >= 1
    plan = sandbox.SandboxPlan(
        argv=decision.argv,
        cwd=cwd,
        readable=() if writes else dirs,
        writable=dirs if writes else (),
        visible=tuple(cap.visible or ()),
        network=cap.limits.get("network", 0) >= 1,
        hidden=ctx.hidden,
    )
    res = sandbox.run(
        plan, timeout_s=decision.timeout_s, output_cap=decision.output_cap_bytes, use_bwrap=ctx.sandbox,
        on_output=ctx.on_output, on_start=ctx.on_start,
    )
    if res.error is not None:
        return CapResult("error", res.error, detail=res.error)
    text = decode(res.output)
    if res.truncated:
        text += TRUNCATION_NOTE.format(kept=len(res.output), total=res.total_bytes)
    mode = "bwrap" if res.sandboxed else "rlimits"
    if res.timed_out:
        return CapResult(
            "timeout", text, res.exit_code, res.truncated, f"killed after {decision.timeout_s} s ({mode})"
        )
    # It ran to its end: "ok" for the request, the program's own verdict is its exit code.
    return CapResult("ok", text, res.exit_code, res.truncated, f"exit {res.exit_code} ({mode})")
