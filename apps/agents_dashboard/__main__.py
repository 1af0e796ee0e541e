"""``fn app agents_dashboard --hub-api URL --bot-api URL [flags]``: the operator's web cockpit.

    fn app agents_dashboard                                  # hub on 127.0.0.1:8000, bot on :8766
    fn app agents_dashboard --hub-api http://127.0.0.1:8000 --bot-api none --stale-after-s 60
    fn app agents_dashboard --host 10.42.0.1 --host 127.0.0.1 --port 8080 --token-file op.token

The operator token is the hub's operator API token: by default read from the same key
store entry the hub uses (``wg_hub/api_token``), or from ``--token-file`` (0600).
Exit 1 with ``{"error", "message"}`` on stderr when it cannot start.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from pathlib import Path

from apps.agents_dashboard.config import DEFAULT_TOKEN_NAME, DashConfig, load_token
from meshagents.errors import FnError


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="fn app agents_dashboard", description="The operator's web cockpit.")
    p.add_argument("--hub-api", default="http://127.0.0.1:8000", help="the hub's operator API base URL")
    p.add_argument(
        "--bot-api", default="http://127.0.0.1:8766", help="the bot's control API ('none': no bot)"
    )
    p.add_argument(
        "--host", action="append", dest="hosts", help="listen address (repeat); default: mesh + loopback"
    )
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--stale-after-s", type=float, default=180.0, help="no handshake for this long: stale")
    p.add_argument("--mesh-rows", type=int, default=500, help="most Mesh rows shown (stale first)")
    p.add_argument("--bot-period-s", type=float, default=3.0)
    p.add_argument("--tick-s", type=float, default=5.0)
    p.add_argument("--session-ttl-s", type=float, default=12 * 3600)
    p.add_argument(
        "--operator-key", help="the operator's ed25519 public key (base64): manifests are checked against it"
    )
    p.add_argument("--token-file", type=Path)
    p.add_argument("--token-name", default=DEFAULT_TOKEN_NAME, help="key store entry of the operator token")
    return p.parse_args(argv)


def config(args: argparse.Namespace) -> DashConfig:
    bot = None if str(args.bot_api).lower() in ("", "none", "off") else args.bot_api
    return DashConfig(
        hub_api=args.hub_api,
        bot_api=bot,
        hosts=tuple(args.hosts or ()),
        port=args.port,
        stale_after_s=args.stale_after_s,
        mesh_rows=args.mesh_rows,
        bot_period_s=args.bot_period_s,
        tick_s=args.tick_s,
        session_ttl_s=args.session_ttl_s,
        operator_key=args.operator_key,
        token_file=args.token_file,
        token_name=args.token_name,
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(
        level=logging.INFO, format="agents_dashboard %(levelname)s %(message)s", stream=sys.stderr
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per hub/bot request is noise
    try:
        cfg = config(args)
        token = load_token(cfg)
        from apps.agents_dashboard.server import serve

        asyncio.run(serve(cfg, token))
    except FnError as exc:
        print(json.dumps(exc.to_json()), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
