"""``netns.call_in``: a callable's sockets live in the named namespace, the caller's stay put.

A namespace of the test's own with only loopback, an HTTP server inside it on 127.0.0.1:
reachable through ``call_in``, not from the test's own namespace on the same port.
"""

from __future__ import annotations

import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from meshagents.errors import FnError
from meshagents.wg.netns import call_in
from tests.conftest import require_root

pytestmark = pytest.mark.integration


def test_call_in_polls_from_the_namespace() -> None:
    require_root()
    ns = f"callin-{secrets.token_hex(3)}"
    port = 20000 + secrets.randbelow(20000)
    subprocess.run(["ip", "netns", "add", ns], check=True)
    server = None
    try:
        subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True)
        server = subprocess.Popen(
            ["nsenter", f"--net=/run/netns/{ns}", sys.executable, "-m", "http.server", "--bind", "127.0.0.1",
             str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip

        def get() -> int:
            deadline = time.monotonic() + 20
            while True:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1) as resp:
                        return int(resp.status)
                except (urllib.error.URLError, OSError):
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.1)

        assert call_in(ns, get) == 200
        with pytest.raises(urllib.error.URLError):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1)  # this namespace: nothing there
        with pytest.raises(FnError) as err:
            call_in(f"{ns}-absent", get)
        assert err.value.code == "netns_missing"
    finally:
        if server is not None:
            server.kill()
            server.wait()
        subprocess.run(["ip", "netns", "del", ns], check=False)
