"""``fn app device_agent``: the device agent's entry point.

    fn app device_agent [--config FILE]                 # run (systemd, Termux, foreground)
    fn app device_agent --config FILE --replay-test ENVELOPE.json
    fn app device_agent --offer default                 # capability entries for the manifest

``--config`` defaults to ``$FN_STATE_DIR/device_agent/config.json`` (written by
enrollment). ``--replay-test`` runs one envelope (a bare envelope or an
``org.meshagents.envelope`` event content) through the same pipeline, nonce store and
audit log, without Matrix, and prints the decision and the status as JSON; exit 0
for ``ok``, 1 for a refusal or an error. Offline there is no approvals room to read,
so an envelope that needs an approval is refused (``rejected_approval``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

import click

from meshagents.apps.device_agent.capabilities.base import Context
from meshagents.apps.device_agent.config import AgentConfig, load
from meshagents.errors import FnError
from meshagents.runtime.appcli import CONTEXT, run_app
from meshagents.state import state_dir


def replay(config: AgentConfig, path: Path) -> int:
    from meshagents.apps.device_agent.pipeline import Pipeline

    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        print(json.dumps({"error": "bad_usage", "message": f"cannot read {path}: {exc}"}), file=sys.stderr)
        return 2
    pipeline = Pipeline(config)
    try:
        ctx = Context(
            sandbox=config.sandbox,
            docker_host=config.docker_host,
            snapshots_dir=config.snapshots_dir,
            hidden=config.protected_paths(),
        )
        verdict = pipeline.check(content, None)
        decision: dict[str, Any] = {"status": verdict.status, "reason": verdict.reason}
        d = verdict.decision
        if d is not None:
            decision.update(
                allowed=d.allowed,
                capability=d.capability.name if d.capability else None,
                argv=d.argv,
                path=d.path,
                requires_approval=d.requires_approval,
                timeout_s=d.timeout_s,
                output_cap_bytes=d.output_cap_bytes,
            )
        outcome = pipeline.process(content, None, ctx)
    finally:
        pipeline.close()
    print(json.dumps({"decision": decision, **outcome.to_json()}, ensure_ascii=False, indent=2))
    return 0 if outcome.status == "ok" else 1


async def serve(config: AgentConfig) -> int:
    from meshagents.apps.device_agent.agent import DeviceAgent

    agent = DeviceAgent(config)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        # Windows has no signal handlers in asyncio: Ctrl+C raises KeyboardInterrupt there.
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, agent.request_stop)
    try:
        try:
            await agent.start()
        except FnError as exc:
            if exc.code == "agent_stopped":
                return 0
            raise
        logging.getLogger("meshagents.device_agent").info(
            "device agent %s up (sandbox %s)", config.device_name, config.sandbox_mode
        )
        await agent.run_forever()
    finally:
        await agent.stop()
    return 0


@click.command(context_settings=CONTEXT, help="The device agent.")
@click.option("--config", "config_path", type=click.Path(path_type=Path),
              help="config.json (default: $FN_STATE_DIR/device_agent/config.json).")
@click.option("--replay-test", type=click.Path(path_type=Path), metavar="ENVELOPE_JSON",
              help="Run one envelope through the pipeline offline and print the result.")
@click.option("--offer", metavar="LEVEL",
              help="Print the capability entries this device can offer (minimal|default|docker).")
def command(config_path: Path | None, replay_test: Path | None, offer: str | None) -> int:
    if offer is not None:
        from meshagents.apps.device_agent.offer import capabilities_for

        try:
            print(json.dumps(capabilities_for(offer), indent=2))
        except FnError as exc:
            print(json.dumps(exc.to_json()), file=sys.stderr)
            return 2
        return 0
    level = os.environ.get("MESHAGENTS_LOG_LEVEL", "INFO").upper()
    logging.basicConfig(
        level=getattr(logging, level, logging.INFO), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("nio").setLevel(logging.WARNING)
    config = load(config_path or state_dir() / "device_agent" / "config.json")
    from meshagents.apps.device_agent.agent import require_sandbox

    require_sandbox(config)  # no bubblewrap: refused unless the config says "sandbox": "weak"
    if replay_test is not None:
        return replay(config, replay_test)
    return asyncio.run(serve(config))


def main(argv: list[str] | None = None) -> int:
    return run_app(command, argv, "fn app device_agent")


if __name__ == "__main__":
    sys.exit(main())
