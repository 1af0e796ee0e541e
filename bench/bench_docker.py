"""Docker capabilities on a real engine: each figure next to its baseline from the same run.

    ./fn bench docker          (or: .venv/bin/python bench/bench_docker.py; root)

Starts a throwaway engine in its own network namespace (tests/testbed/docker_engine.py)
and prints medians (p95) in milliseconds:

- engine cold start (netns + dockerd + image import) and full teardown;
- docker_container_list through the catalog vs the bare SDK list call;
- docker_container_exec through the catalog (connect + whitelist + exec + inspect)
  vs the SDK's exec_run, and a refused (non-whitelisted) exec;
- docker_container_logs tail 100 vs the bare SDK logs call;
- exec timeout overshoot (timeout 0.3 s on `sleep 30`);
- deep mode: the attach call, and attach to the first answered ping from the
  container's namespace to the hub (minimal hub as in the integration test), vs a
  later ping over the same, established tunnel.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

N = 30


def stats_ms(fn: Callable[[], Any], n: int = N) -> tuple[float, float]:
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1000.0)
    samples.sort()
    return statistics.median(samples), samples[min(len(samples) - 1, int(len(samples) * 0.95))]


def row(label: str, med: float, p95: float | None = None) -> None:
    tail = f"  (p95 {p95:.2f})" if p95 is not None else ""
    print(f"  {label:<58} {med:9.2f} ms{tail}")


def main() -> None:
    if os.geteuid() != 0:
        sys.exit("bench_docker needs root (dockerd in a network namespace)")
    with tempfile.TemporaryDirectory(prefix="fn-bench-docker-") as state:
        os.environ["FN_STATE_DIR"] = state  # the deep-mode keys made here go with it
        run()


def run() -> None:
    from meshagents.docker import deep
    from meshagents.docker.engine import connect, get_container
    from meshagents.errors import FnError
    from meshagents.runtime.api import call
    from tests.testbed.docker_engine import engine_running
    from tests.testbed.docker_hub import minimal_hub

    t0 = time.perf_counter()
    with engine_running() as eng:
        cold = (time.perf_counter() - t0) * 1000
        print("engine")
        row("cold start: netns + dockerd + busybox image import", cold)
        c = eng.run("sh", "-c", "seq 1 1000; exec sleep 3600")
        for i in range(4):
            eng.run("sleep", "3600", labels={"bench": str(i)})
        host = eng.docker_host
        sdk = eng.client

        print("list (5 containers)")
        row("baseline: SDK client.api.containers()", *stats_ms(lambda: sdk.api.containers()))
        row("docker_container_list (catalog call, own connection)", *stats_ms(
            lambda: call("docker_container_list", docker_host=host)))  # fmt: skip

        print("exec `echo hi`")
        row("baseline: SDK container.exec_run(['echo','hi'])", *stats_ms(lambda: c.exec_run(["echo", "hi"])))
        row("docker_container_exec (catalog, whitelist, cap, exit code)", *stats_ms(
            lambda: call("docker_container_exec", docker_host=host, container=c.name, argv=["echo", "hi"],
                         whitelist=["echo"])))  # fmt: skip

        def refused() -> None:
            with contextlib.suppress(FnError):
                call(
                    "docker_container_exec",
                    docker_host=host,
                    container=c.name,
                    argv=["rm"],
                    whitelist=["echo"],
                )

        row("refused exec (not whitelisted; engine never contacted)", *stats_ms(refused))

        print("logs tail 100 of 1000 lines")
        row("baseline: SDK client.api.logs(tail=100)", *stats_ms(lambda: sdk.api.logs(c.id, tail=100)))
        row("docker_container_logs lines=100 (catalog)", *stats_ms(
            lambda: call("docker_container_logs", docker_host=host, container=c.name, lines=100)
        ))  # fmt: skip

        print("exec timeout")

        def timed_out() -> None:
            r = call("docker_container_exec", docker_host=host, container=c.name, argv=["sleep", "30"],
                     whitelist=["sleep"], timeout=0.3)  # fmt: skip
            assert r.timed_out

        med, p95 = stats_ms(timed_out, 5)
        row("timeout=0.3 s on `sleep 30`: whole call (overshoot = -300)", med, p95)

        print("deep mode")
        with minimal_hub(eng) as hub:
            samples, base = [], []
            for i in range(5):
                d = eng.run("sleep", "3600", cap_drop=["ALL"], cap_add=["NET_RAW"])
                ident = call("docker_container_enroll", docker_host=host, container=d.name, mode="deep")
                hub.add_peer(ident["public_key"], f"10.42.0.{20 + i}")
                t = time.perf_counter()
                call("docker_container_enroll", docker_host=host, container=d.name, mode="deep",
                     mesh_address=f"10.42.0.{20 + i}/24", hub_public_key=hub.public_key,
                     hub_endpoint=hub.endpoint, host_netns=eng.netns_path)  # fmt: skip
                attach = (time.perf_counter() - t) * 1000
                # Ping from the container's namespace with the host's ping: measures the
                # tunnel, not `docker exec` (~100 ms of its own).
                d.reload()
                pid = d.attrs["State"]["Pid"]
                ping = ["nsenter", f"--net=/proc/{pid}/ns/net", "ping", "-c", "1", "-W", "5", "10.42.0.1"]
                subprocess.run(ping, check=True, capture_output=True)
                samples.append(((time.perf_counter() - t) * 1000, attach))
                t = time.perf_counter()
                subprocess.run(ping, check=True, capture_output=True)
                base.append((time.perf_counter() - t) * 1000)
                client = connect(host)
                deep.detach(get_container(client, d.name))
                client.close()
                d.remove(force=True)
            row(
                "attach call (key kept, wireguard-go, move, UAPI, addr)",
                statistics.median(s[1] for s in samples),
            )
            row("attach call + first ping answered over the mesh", statistics.median(s[0] for s in samples))
            row("baseline: a later ping over the same tunnel", statistics.median(base))
        t0 = time.perf_counter()
    row("engine teardown (containers, dockerd, shims, cgroups, netns)", (time.perf_counter() - t0) * 1000)


if __name__ == "__main__":
    main()
