"""``fn app wg_hub --config FILE [flags]``: run the hub service in the foreground.

    fn app wg_hub --config /etc/meshagents/wg_hub.toml
    fn app wg_hub --interface wg0 --public-host 203.0.113.7 --approver @op:hub.example
    fn app wg_hub --show-api-token        # print the operator API bearer token (made if missing)

Flags override the file. Exit 1 with ``{"error", "message"}`` on stderr when the hub
cannot start (no WireGuard hub set up, keys missing, address not bindable).
"""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path
from typing import Any

import click

from meshagents.apps.wg_hub import config as config_mod
from meshagents.runtime.appcli import CONTEXT, run_app

_P = click.Path(path_type=Path)


@click.command(context_settings=CONTEXT,
               help="The wg_hub service (enroll + operator API). Flags override the file.")
@click.option("--config", type=_P, help="TOML, JSON or YAML file (see docs/hub.md).")
@click.option("--interface", help="The hub's WireGuard interface (default wg0).")
@click.option("--config-dir", type=_P, help="Where the interface's config lives (default /etc/wireguard).")
@click.option("--netns", help="Network namespace of the interface (tests, the demo).")
@click.option("--public-host", help="Address /enroll listens on (the one public endpoint).")
@click.option("--public-port", type=int, help="Port of /enroll (default 8443).")
@click.option("--operator-port", type=int, help="Port of the operator API (default 8000).")
@click.option("--operator-host", "operator_hosts", multiple=True,
              help="Operator API listen address (repeat; default: mesh address + 127.0.0.1).")
@click.option("--endpoint", help="WireGuard endpoint host:port handed to devices.")
@click.option("--public-url", help="The /enroll base URL written into tokens.")
@click.option("--approver", "approvers", multiple=True, help="Matrix id allowed to approve (repeat).")
@click.option("--events-period-s", type=float, help="Seconds between periodic SSE updates.")
@click.option("--manifest-key", help="Key store name of the manifest signing key (default operator/ed25519).")
@click.option("--state-dir", type=_P, help="The hub's state directory (default <state>/wg_hub).")
@click.option("--show-api-token", is_flag=True, help="Print the operator API bearer token (made if missing).")
def command(config: Path | None, show_api_token: bool, **flags: Any) -> int:
    logging.basicConfig(level=logging.INFO, format="wg_hub %(levelname)s %(message)s", stream=sys.stderr)
    # an option not given is None (or () when repeatable): the file's value stands
    overrides = {k: (v or None) if isinstance(v, tuple) else v for k, v in flags.items()}
    cfg = config_mod.load(config, overrides)
    if show_api_token:
        from meshagents.apps.wg_hub.enroll import api_token

        print(api_token(cfg))
        return 0
    from meshagents.apps.wg_hub.server import serve

    try:
        asyncio.run(serve(cfg))
    except KeyboardInterrupt:
        return 130
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_app(command, argv, "fn app wg_hub")


if __name__ == "__main__":
    sys.exit(main())
