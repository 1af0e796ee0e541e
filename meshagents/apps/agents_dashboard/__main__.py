"""``fn app agents_dashboard --hub-api URL --bot-api URL [flags]``: the operator's web cockpit.

    fn app agents_dashboard                                  # hub on 127.0.0.1:8000, bot on :8766
    fn app agents_dashboard --hub-api http://127.0.0.1:8000 --bot-api none --stale-after-s 60
    fn app agents_dashboard --host 10.42.0.1 --host 127.0.0.1 --port 8080 --token-file op.token

The operator token is the hub's operator API token: by default read from the same key
store entry the hub uses (``wg_hub/api_token``), or from ``--token-file`` (0600).
Exit 1 with ``{"error", "message"}`` on stderr when it cannot start.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path
from typing import Any

import click

from meshagents.apps.agents_dashboard.config import DEFAULT_TOKEN_NAME, DashConfig, load_token
from meshagents.runtime.appcli import CONTEXT, run_app


@click.command(context_settings=CONTEXT, help="The operator's web cockpit.")
@click.option("--hub-api", default="http://127.0.0.1:8000", show_default=True,
              help="The hub's operator API base URL.")
@click.option("--bot-api", default="http://127.0.0.1:8766", show_default=True,
              help="The bot's control API ('none': no bot).")
@click.option("--host", "hosts", multiple=True, help="Listen address (repeat); default: mesh + loopback.")
@click.option("--port", type=int, default=8080, show_default=True, help="Listen port.")
@click.option("--stale-after-s", type=float, default=180.0, show_default=True,
              help="No handshake for this long: stale.")
@click.option("--mesh-rows", type=int, default=500, show_default=True,
              help="Most Mesh rows shown (stale first).")
@click.option("--bot-period-s", type=float, default=3.0, show_default=True,
              help="Seconds between reads of the bot's state.")
@click.option("--tick-s", type=float, default=5.0, show_default=True, help="Seconds between page updates.")
@click.option("--session-ttl-s", type=float, default=12 * 3600, show_default=True,
              help="Login session lifetime in seconds.")
@click.option("--operator-key",
              help="The operator's ed25519 public key (base64): manifests are checked against it.")
@click.option("--token-file", type=click.Path(path_type=Path), help="The operator API token file (0600).")
@click.option("--token-name", default=DEFAULT_TOKEN_NAME, show_default=True,
              help="Key store entry of the operator token.")
def command(**opts: Any) -> int:
    logging.basicConfig(
        level=logging.INFO, format="agents_dashboard %(levelname)s %(message)s", stream=sys.stderr
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per hub/bot request is noise
    cfg = config(opts)
    token = load_token(cfg)
    from meshagents.apps.agents_dashboard.server import serve

    try:
        asyncio.run(serve(cfg, token))
    except KeyboardInterrupt:
        return 130
    return 0


def config(opts: dict[str, Any]) -> DashConfig:
    bot = None if str(opts["bot_api"]).lower() in ("", "none", "off") else opts["bot_api"]
    fields = {k: v for k, v in opts.items() if k in DashConfig.model_fields}
    return DashConfig(**{**fields, "bot_api": bot, "hosts": tuple(opts["hosts"] or ())})


def main(argv: list[str] | None = None) -> int:
    return run_app(command, argv, "fn app agents_dashboard")


if __name__ == "__main__":
    sys.exit(main())
