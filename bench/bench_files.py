"""Encrypted attachments on a real Synapse: what a file costs beside a plain upload.

    .venv/bin/python bench/bench_files.py [--n 10] [--sizes 65536,1048576,8388608]

Starts one embedded Synapse (temp dir, removed after) and one client on our base. For
each size, ``--n`` times: the agent's path (``attachments.upload_encrypted``: nio's
AES-256-CTR + SHA-256, then the upload) and the device's path for an operator's upload
(``attachments.fetch_file``: authenticated download, hash check, decrypt), beside the
baseline of the same run: the same bytes uploaded and downloaded without encryption.
Prints p50 / p95 in ms.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from meshagents.matrix import attachments
from meshagents.matrix.client import ClientConfig, MatrixClient
from meshagents.matrix.homeserver import EmbeddedSynapse
from meshagents.testbed import benchcli
from meshagents.testbed.benchkit import free_port, pct


async def run(hs: EmbeddedSynapse, root: Path, n: int, sizes: list[int]) -> None:
    user = hs.register("files-" + secrets.token_hex(3), "pw")
    client = MatrixClient(ClientConfig(hs.url, user, "pw", root / "client"))
    await client.start()
    try:
        print(f"{'size':>9}  {'plain up+down p50/p95':>22}  {'encrypted up p50/p95':>21}  "
              f"{'fetch+decrypt p50/p95':>22}")
        for size in sizes:
            plain_t, up_t, down_t = [], [], []
            for _ in range(n):
                data = os.urandom(size)
                t0 = time.perf_counter()
                mxc = await attachments.upload(client, data, filename="plain.bin")
                got = await attachments.download(client, mxc, max_bytes=size)
                plain_t.append((time.perf_counter() - t0) * 1000)
                assert got == data
                t0 = time.perf_counter()
                ref = await attachments.upload_encrypted(client, data, filename="enc.bin")
                up_t.append((time.perf_counter() - t0) * 1000)
                t0 = time.perf_counter()
                back = await attachments.fetch_file(client, ref, max_bytes=size)
                down_t.append((time.perf_counter() - t0) * 1000)
                assert back == data
            print(f"{size:>9}  {pct(plain_t, 50):>10.1f} / {pct(plain_t, 95):>8.1f}  "
                  f"{pct(up_t, 50):>9.1f} / {pct(up_t, 95):>8.1f}  "
                  f"{pct(down_t, 50):>10.1f} / {pct(down_t, 95):>8.1f}")
    finally:
        await client.stop()


def main() -> None:
    ns = benchcli.options(n=(int, 10), sizes=(str, "65536,1048576,8388608"))
    root = Path(tempfile.mkdtemp(prefix="bench-files-"))
    hs = EmbeddedSynapse(root / "hs", port=free_port())
    try:
        hs.start()
        asyncio.run(run(hs, root, ns.n, [int(x) for x in ns.sizes.split(",")]))
    finally:
        hs.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
