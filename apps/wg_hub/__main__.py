"""``fn app wg_hub --config FILE [flags]``: run the hub service in the foreground.

    fn app wg_hub --config /etc/meshagents/wg_hub.toml
    fn app wg_hub --interface wg0 --public-host 203.0.113.7 --approver @op:hub.example
    fn app wg_hub --show-api-token        # print the operator API bearer token (made if missing)

Flags override the file. Exit 1 with ``{"error", "message"}`` on stderr when the hub
cannot start (no WireGuard hub set up, keys missing, address not bindable).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from pathlib import Path

from apps.wg_hub import config as config_mod
from meshagents.errors import FnError


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="fn app wg_hub", description="The wg_hub service (enroll + operator API)."
    )
    p.add_argument("--config", type=Path, help="TOML, JSON or YAML file (see docs/hub.md)")
    p.add_argument("--interface")
    p.add_argument("--config-dir", type=Path)
    p.add_argument("--netns")
    p.add_argument("--public-host")
    p.add_argument("--public-port", type=int)
    p.add_argument("--operator-port", type=int)
    p.add_argument("--operator-host", action="append", dest="operator_hosts")
    p.add_argument("--endpoint", help="WireGuard endpoint host:port handed to devices")
    p.add_argument("--public-url", help="the /enroll base URL written into tokens")
    p.add_argument("--approver", action="append", dest="approvers")
    p.add_argument("--events-period-s", type=float)
    p.add_argument(
        "--manifest-key", help="key store name of the manifest signing key (default operator/ed25519)"
    )
    p.add_argument("--state-dir", type=Path)
    p.add_argument("--show-api-token", action="store_true")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="wg_hub %(levelname)s %(message)s", stream=sys.stderr)
    overrides = {k: v for k, v in vars(args).items() if k not in ("config", "show_api_token")}
    try:
        cfg = config_mod.load(args.config, overrides)
        if args.show_api_token:
            from apps.wg_hub.enroll import api_token

            print(api_token(cfg))
            return 0
        from apps.wg_hub.server import serve

        asyncio.run(serve(cfg))
    except FnError as exc:
        print(json.dumps(exc.to_json()), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
