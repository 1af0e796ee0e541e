"""One operator command to a device of the VM hub, from the operator's namespace, through Caddy.

    ip netns exec <operator ns> env SSL_CERT_FILE=<caddy root.crt> \\
        .venv/bin/python -m tests.testbed.vmhub_chat --creds <state>/operator/matrix-<host>.json \\
        --bot @bot:<domain> --device <name> --command '!exec ls /tmp' [--timeout 300]

prints ``{"sender", "body", "seconds"}`` of the device's answer as JSON. It is the project's
own Matrix client (E2EE, cross-signed with the operator's seeds kept beside the
credentials), run as a process of its own because the homeserver is reachable only on the
VM's segment: ``ip netns exec`` gives it the namespace's hosts file (the hub's domain) and
``SSL_CERT_FILE`` makes Caddy's internal CA the only one it trusts (the CA pinned).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from meshagents.testbed.rig.operator import Operator, OperatorLogin


async def ask(args: argparse.Namespace) -> dict[str, object]:
    creds = json.loads(Path(args.creds).read_text(encoding="utf-8"))
    home = Path(args.creds).parent
    server_name = str(creds["user_id"]).split(":", 1)[1]
    login = OperatorLogin(
        homeserver=str(creds["homeserver"]),
        user_id=str(creds["user_id"]),
        password=str(creds["password"]),
        cross_signing_path=home / "vmhub-cross-signing.json",
        store_dir=home / "vmhub-stores" / args.store,
    )
    op = Operator(login, bot_user=args.bot, server_name=server_name)
    await op.start()
    try:
        reply = await op.command(args.device, args.command, timeout=args.timeout)
    finally:
        await op.stop()
    return {"sender": reply.sender, "body": reply.body, "seconds": round(reply.seconds, 2)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--creds", required=True)
    p.add_argument("--bot", required=True)
    p.add_argument("--device", required=True)
    p.add_argument("--command", required=True)
    p.add_argument("--store", default="vmhub")
    p.add_argument("--timeout", type=float, default=300.0)
    args = p.parse_args()
    out = asyncio.run(ask(args))
    sys.stdout.write(json.dumps(out) + "\n")


if __name__ == "__main__":
    main()
