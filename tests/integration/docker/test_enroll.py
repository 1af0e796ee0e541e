"""docker_container_enroll on a real engine: light-mode manifest entries, deep-mode mesh peer.

Deep mode needs a hub: a minimal one (tests/testbed/docker_hub.py) built with raw commands (a namespace, a
veth pair into the engine's namespace, wireguard-go and `wg set`), independent of the
mesh layer's own code, so this test checks our side against plain WireGuard tools.

    hub netns (dkhub-<sfx>)                 engine netns (dk-<sfx>)        container netns
    wireguard-go dkh<sfx> 10.42.0.1/24      wireguard-go mc<id> (UDP) ───▶ mc<id> 10.42.0.10/24
    dkv<sfx> 198.19.<n>.1/30 ◀── veth ──▶   dkw<sfx> 198.19.<n>.2/30
"""

from __future__ import annotations

import base64
import contextlib
import time
from pathlib import Path
from typing import Any

import pytest

from meshagents.docker import deep, uapi
from meshagents.docker.engine import connect, get_container
from meshagents.errors import FnError
from meshagents.runtime.api import call
from tests.testbed.docker_engine import DockerEngine
from tests.testbed.docker_hub import minimal_hub
from tests.testbed.docker_hub import sh as _sh
from tests.testbed.host import require_binary

pytestmark = [pytest.mark.integration, pytest.mark.root]

WL = ["echo", "ls", "/bin/cat"]


# --- light mode -----------------------------------------------------------------------


def test_light_mode_maps_the_container_into_the_host_manifest(
    docker_engine: DockerEngine, sleeper: Any, state_dir: Path
) -> None:
    r = call(
        "docker_container_enroll",
        docker_host=docker_engine.docker_host,
        container=sleeper.name,
        whitelist=WL,
        host="home-wsl",
        requires_approval=True,
    )
    assert r["mode"] == "light"
    assert r["container_id"] == sleeper.id
    assert r["host_room_alias"] == "#dev-home-wsl"
    caps = {c["name"]: c for c in r["capabilities"]}
    assert set(caps) == {"docker.container.exec", "docker.container.logs", "docker.container.list"}
    ex = caps["docker.container.exec"]
    # Bare names were resolved on the container's own PATH (the image has PATH=/bin).
    assert ex["executables"] == ["/bin/cat", "/bin/echo", "/bin/ls"]
    assert ex["values"] == {"container": [sleeper.name]}
    assert ex["requires_approval"] is True
    assert r["warnings"] == []
    # The entries are valid capabilities of the trust layer's manifest model.
    from meshagents.trust.models import Capability

    for entry in r["capabilities"]:
        Capability.model_validate(entry)
    # And they are what exec enforces: a listed binary runs, another does not.
    ok = call(
        "docker_container_exec",
        docker_host=docker_engine.docker_host,
        container=sleeper.name,
        argv=["/bin/echo", "mapped"],
        whitelist=ex["executables"],
    )
    assert ok.stdout == "mapped\n"
    with pytest.raises(FnError) as err:
        call(
            "docker_container_exec",
            docker_host=docker_engine.docker_host,
            container=sleeper.name,
            argv=["/bin/sh", "-c", "id"],
            whitelist=ex["executables"],
        )
    assert err.value.code == "rejected_args"


def test_light_mode_warns_refuses_missing_and_works_on_stopped(
    docker_engine: DockerEngine, sleeper: Any, stopped: Any, state_dir: Path
) -> None:
    host = docker_engine.docker_host
    r = call("docker_container_enroll", docker_host=host, container=sleeper.name, whitelist=["sh"])
    assert r["capabilities"][0]["executables"] == ["/bin/sh"]
    assert any("allows everything" in w for w in r["warnings"])
    with pytest.raises(FnError) as err:
        call(
            "docker_container_enroll",
            docker_host=host,
            container=sleeper.name,
            whitelist=["ls", "nosuchprog"],
        )
    assert err.value.code == "rejected_args"
    assert err.value.details["missing"] == ["nosuchprog"]
    with pytest.raises(FnError) as err:
        call("docker_container_enroll", docker_host=host, container=sleeper.name, whitelist=["/bin"])
    assert err.value.code == "rejected_args"  # a directory is not an executable
    # Resolution reads the file system through the engine: no exec, so a stopped container works.
    r = call("docker_container_enroll", docker_host=host, container=stopped.name, whitelist=["ls"])
    assert r["capabilities"][0]["executables"] == ["/bin/ls"]
    with pytest.raises(FnError) as err:
        call(
            "docker_container_enroll",
            docker_host=host,
            container=f"ghost-{docker_engine.suffix}",
            whitelist=WL,
        )
    assert err.value.code == "container_not_found"


# --- deep mode: a minimal hub (tests/testbed/docker_hub.py) ---------------------------


def _wg_go_pids(iface: str) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                argv = (entry / "cmdline").read_bytes().split(b"\0")
                if argv[:2] == [b"wireguard-go", iface.encode()]:
                    out.append(int(entry.name))
    return out


def _exec(eng: DockerEngine, c: Any, *argv: str) -> Any:
    return call(
        "docker_container_exec",
        docker_host=eng.docker_host,
        container=c.name,
        argv=list(argv),
        whitelist=["ping", "ip", "ls"],
        timeout=15,
    )


def test_deep_mode_container_is_its_own_mesh_peer(docker_engine: DockerEngine, state_dir: Path) -> None:
    require_binary("wireguard-go", "wg", "nsenter")
    eng = docker_engine
    # Unprivileged: every capability dropped except NET_RAW, which busybox ping needs.
    c = eng.run("sleep", "3600", cap_drop=["ALL"], cap_add=["NET_RAW"])
    iface = deep.default_interface(c.id)
    try:
        with minimal_hub(eng) as hub:
            # Step 1: the container's own key, so the hub can know the peer before it comes up.
            prep = call("docker_container_enroll", docker_host=eng.docker_host, container=c.name, mode="deep")
            assert prep["attached"] is False
            assert prep["room_alias"] == f"#cont-{c.name}"
            assert len(base64.b64decode(prep["public_key"])) == 32
            hub.add_peer(prep["public_key"], "10.42.0.10")

            # Step 2: attach. wireguard-go runs host-side (engine netns), its TUN moves in.
            t0 = time.perf_counter()
            att = call(
                "docker_container_enroll",
                docker_host=eng.docker_host,
                container=c.name,
                mode="deep",
                mesh_address="10.42.0.10/24",
                hub_public_key=hub.public_key,
                hub_endpoint=hub.endpoint,
                host_netns=eng.netns_path,
            )
            assert att["attached"] is True and att["reused"] is False
            assert att["public_key"] == prep["public_key"]  # same identity as announced
            assert att["interface"] == iface
            assert att["room_alias"] == f"#cont-{c.name}"

            # The container reaches the hub over the mesh, by itself.
            ping = _exec(eng, c, "ping", "-c", "1", "-W", "5", "10.42.0.1")
            first_ping_s = time.perf_counter() - t0
            assert ping.exit_code == 0, ping
            assert "1 packets received" in ping.stdout
            print(f"attach to first answered ping: {first_ping_s * 1000:.0f} ms")

            # And the other way: the hub reaches the container at its own mesh address.
            _sh("nsenter", f"--net=/run/netns/{hub.netns}", "ping", "-c", "1", "-W", "3", "10.42.0.10")

            # The hub sees the container's own key, with an endpoint on the host side.
            seen = hub.peer(prep["public_key"])
            assert seen["latest_handshake"] != "0"
            assert seen["endpoint"].startswith(hub.endpoint.replace(".1:51820", ".2:"))

            # Inside: only lo and the mesh interface; no NET_ADMIN, so it cannot change it.
            links = _exec(eng, c, "ip", "-o", "link")
            names = sorted(line.split(":")[1].strip() for line in links.stdout.splitlines())
            assert names == sorted(["lo", iface])
            denied = _exec(eng, c, "ip", "link", "del", iface)
            assert denied.exit_code != 0
            # The private key is not in the container: no tun device, no key file.
            assert _exec(eng, c, "ls", "/dev/net/tun").exit_code != 0
            assert _wg_go_pids(iface), "wireguard-go should run on the host side"

            # Attaching again is idempotent (same interface, reconfigured).
            again = call(
                "docker_container_enroll",
                docker_host=eng.docker_host,
                container=c.name,
                mode="deep",
                mesh_address="10.42.0.10/24",
                hub_public_key=hub.public_key,
                hub_endpoint=hub.endpoint,
                host_netns=eng.netns_path,
            )
            assert again["reused"] is True and len(_wg_go_pids(iface)) == 1

            # Stop: the namespace goes, wireguard-go exits by itself. Start: re-attach, same key.
            c.stop(timeout=5)
            deadline = time.monotonic() + 5
            while _wg_go_pids(iface):
                assert time.monotonic() < deadline, "wireguard-go outlived the container"
                time.sleep(0.02)
            # Start: the agent sees the start event and re-attaches with the saved settings.
            client = connect(eng.docker_host)
            try:
                starts = deep.watch_starts(client, max_seconds=10, names=[c.name])
                c.start()
                assert next(starts) == c.name
                back = deep.reattach(get_container(client, c.name))
                assert back.public_key == prep["public_key"] and back.reused is False
                assert back.mesh_address == "10.42.0.10/24"
                assert _exec(eng, c, "ping", "-c", "1", "-W", "5", "10.42.0.1").exit_code == 0
                # Restarted again: a plain enroll call re-attaches just the same.
                starts.close()
                c.restart(timeout=5)
                again = call(
                    "docker_container_enroll",
                    docker_host=eng.docker_host,
                    container=c.name,
                    mode="deep",
                    mesh_address="10.42.0.10/24",
                    hub_public_key=hub.public_key,
                    hub_endpoint=hub.endpoint,
                    host_netns=eng.netns_path,
                )
                assert again["public_key"] == prep["public_key"] and again["reused"] is False
                assert _exec(eng, c, "ping", "-c", "1", "-W", "5", "10.42.0.1").exit_code == 0
            finally:
                client.close()
    finally:
        client = connect(eng.docker_host)
        try:
            deep.detach(get_container(client, c.name))
        except FnError:
            pass
        finally:
            client.close()
        c.remove(force=True)
        deadline = time.monotonic() + 5
        while (_wg_go_pids(iface) or uapi.socket_path(iface).exists()) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not _wg_go_pids(iface)
        assert not uapi.socket_path(iface).exists(), "wireguard-go left its UAPI socket behind"


def test_deep_mode_refuses_host_network_and_bad_input(docker_engine: DockerEngine, state_dir: Path) -> None:
    eng = docker_engine
    c = eng.run("sleep", "3600", network_mode="host")
    try:
        with pytest.raises(FnError) as err:
            call(
                "docker_container_enroll",
                docker_host=eng.docker_host,
                container=c.name,
                mode="deep",
                mesh_address="10.42.0.11/24",
                hub_public_key=base64.b64encode(b"\1" * 32).decode(),
                hub_endpoint="198.19.0.1:51820",
                host_netns=eng.netns_path,
            )
        assert err.value.code == "rejected_args"
        assert "host" in err.value.message
        with pytest.raises(FnError) as err:
            call(
                "docker_container_enroll",
                docker_host=eng.docker_host,
                container=c.name,
                mode="deep",
                mesh_address="10.42.0.11/24",
            )
        assert err.value.code == "bad_usage"
    finally:
        c.remove(force=True)


def test_deep_mode_on_a_stopped_container(docker_engine: DockerEngine, stopped: Any, state_dir: Path) -> None:
    with pytest.raises(FnError) as err:
        call(
            "docker_container_enroll",
            docker_host=docker_engine.docker_host,
            container=stopped.name,
            mode="deep",
            mesh_address="10.42.0.12/24",
            hub_public_key=base64.b64encode(b"\2" * 32).decode(),
            hub_endpoint="198.19.0.1:51820",
            host_netns=docker_engine.netns_path,
        )
    assert err.value.code == "container_not_running"
