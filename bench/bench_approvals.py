"""Approval check and enrollment sealing: prints figures against a baseline of the same run.

    .venv/bin/python bench/bench_approvals.py [--n N]

1. ``trust.approval.check_approval`` on a good approval (binding rebuilt, R re-rendered,
   digests compared), with 0 and with 100 events between R and A, vs one raw ed25519
   verification (what every envelope costs anyway).
2. ``seal_secrets`` + ``open_secrets`` of the enrollment secrets vs a raw PyNaCl sealed box
   of the same bytes (the difference is the key conversion and canonical JSON).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from nacl.public import SealedBox
from nacl.signing import SigningKey

from meshagents.testbed import benchcli
from meshagents.trust import envelope as E
from meshagents.trust.approval import check_approval, make_binding, request_content
from meshagents.trust.models import Manifest
from meshagents.trust.sealing import open_secrets, seal_secrets
from meshagents.trust.signing import public_b64


def per_call(n: int, fn: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, (time.perf_counter() - t0) / n)
    return best


def main() -> None:
    n = benchcli.options(n=(int, 500)).n
    op, ctl, dev = SigningKey.generate(), SigningKey.generate(), SigningKey.generate()
    now = int(time.time())
    manifest = Manifest.model_validate({
        "device_id": "dev-1", "device_name": "dev-1", "device_key": public_b64(dev),
        "wg_public_key": public_b64(dev), "mesh_address": "10.42.0.10", "matrix_user": "@dev-1:hub",
        "approvers": ["@op:hub"], "controllers": [public_b64(ctl)], "bot_users": ["@bot:hub"],
        "capabilities": [{"name": "fs.write", "requires_approval": True}], "serial": 1,
        "issued_at": now - 10, "expires_at": now + 3600, "operator_key": public_b64(op),
    })  # fmt: skip
    args = {"path": "/srv/note.txt", "content": "x" * 2000}
    env = E.sign(ctl, device_id="dev-1", capability="fs.write", args=args, approval="$A")
    binding = make_binding(approval_id="k3x9qa", request_id=env.request_id, device_id="dev-1",
                           capability="fs.write", args=args, deadline=now + 600, requester="@op:hub")
    content = request_content(binding, args)
    r = {"event_id": "$R", "sender": "@bot:hub", "type": "m.room.message", "content": content}
    a = {"event_id": "$A", "sender": "@op:hub", "type": "m.reaction",
         "content": {"m.relates_to": {"rel_type": "m.annotation", "event_id": "$R", "key": "👍"}}}
    noise: list[dict[str, Any]] = [
        {"event_id": f"$n{i}", "sender": "@bot:hub", "type": "m.room.message", "verified": True,
         "content": {"msgtype": "m.notice", "body": f"alert {i}"}} for i in range(100)
    ]  # fmt: skip

    def check(between: list[dict[str, Any]]) -> None:
        v = check_approval(envelope=env, manifest=manifest, approval=a, approval_verified=True, request=r,
                           request_verified=True, between=between, now=now)
        assert v.ok, v

    raw_msg = ctl.sign(b"y" * 600)
    raw = per_call(n, lambda: ctl.verify_key.verify(raw_msg))
    c0 = per_call(n, lambda: check([]))
    c100 = per_call(n, lambda: check(noise))
    print("== approval check (best of 5)")
    print(f"raw ed25519 verify (baseline)    : {raw * 1e6:8.1f} us")
    print(f"check_approval, nothing between  : {c0 * 1e6:8.1f} us  ({c0 / raw:.1f} x baseline)")
    print(f"check_approval, 100 events between: {c100 * 1e6:8.1f} us  ({c100 / raw:.1f} x baseline)")

    secrets = {"matrix_password": "p" * 43, "preshared_key": "k" * 43 + "="}
    box = SealedBox(dev.verify_key.to_curve25519_public_key())
    opener = SealedBox(dev.to_curve25519_private_key())
    plain = b"z" * 120
    raw_seal = per_call(n, lambda: opener.decrypt(box.encrypt(plain)))
    ours = per_call(n, lambda: open_secrets(dev, seal_secrets(public_b64(dev), secrets)))
    print("== enrollment secrets")
    print(f"raw SealedBox encrypt+decrypt (baseline): {raw_seal * 1e6:8.1f} us")
    print(f"seal_secrets + open_secrets             : {ours * 1e6:8.1f} us  ({ours / raw_seal:.1f} x)")


if __name__ == "__main__":
    main()
