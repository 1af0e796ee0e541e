"""Pure parts of listing, manifest entries, deep mode, exec and error mapping."""

from __future__ import annotations

import base64
from pathlib import Path

import docker.errors
import pytest
import requests
import requests.exceptions

from meshagents.docker import deep, uapi
from meshagents.docker.engine import connect, resolve_host
from meshagents.docker.errors import map_error
from meshagents.docker.execute import check_limits, descendants
from meshagents.docker.listing import info_of, normalize_filters
from meshagents.docker.manifest import container_room_alias, light_capabilities
from meshagents.docker.resolve import candidates
from meshagents.errors import FnError

pytestmark = pytest.mark.unit


def test_filters_are_normalised_and_checked() -> None:
    assert normalize_filters(None) == {}
    assert normalize_filters({"label": "a=b", "status": ["running", "paused"], "id": 12}) == {
        "label": ["a=b"],
        "status": ["running", "paused"],
        "id": ["12"],
    }
    for bad in ({"colour": "red"}, {"label": {"a": "b"}}, {"label": [["x"]]}, {"name": True}):
        with pytest.raises(FnError) as err:
            normalize_filters(bad)
        assert err.value.code == "rejected_args"


def test_info_of_a_list_row() -> None:
    row = {
        "Id": "a" * 64,
        "Names": ["/web"],
        "Image": "busybox:1",
        "State": "running",
        "Status": "Up 2 minutes",
        "Labels": {"k": "v"},
        "Created": 1700000000,
    }
    info = info_of(row)
    assert (info.name, info.short_id, info.image, info.status, info.labels) == (
        "web",
        "a" * 12,
        "busybox:1",
        "running",
        {"k": "v"},
    )
    assert info_of({"Id": "b", "Names": None, "Labels": None}).labels == {}


def test_light_entries() -> None:
    caps = light_capabilities(
        "web", ["/bin/ls", "/bin/echo", "/bin/ls"], requires_approval=True, timeout_s=5, output_cap=100
    )
    by = {c["name"]: c for c in caps}
    ex = by["docker.container.exec"]
    assert ex["executables"] == ["/bin/echo", "/bin/ls"]
    assert ex["values"] == {"container": ["web"]}
    assert (ex["requires_approval"], ex["timeout_s"], ex["output_cap_bytes"]) == (True, 5, 100)
    assert by["docker.container.logs"]["values"] == {"container": ["web"]}
    assert set(by["docker.container.logs"]["limits"]) == {"tail", "follow_s"}
    assert by["docker.container.list"]["limits"] == {"all": 1}
    assert container_room_alias("web") == "#cont-web"
    for bad in ([], ["ls"], ["/bin/ls", "echo"]):
        with pytest.raises(FnError) as err:
            light_capabilities("web", bad)
        assert err.value.code == "rejected_args"


def test_light_entries_fit_the_trust_manifest_model() -> None:
    from meshagents.trust.models import Capability

    for entry in light_capabilities("web-1", ["/bin/ls"]):
        cap = Capability.model_validate(entry)
        assert cap.values == {"container": ["web-1"]}


def test_path_candidates() -> None:
    assert candidates("/bin/ls", "/x") == ["/bin/ls"]
    assert candidates("ls", "/usr/bin:relative:/bin/") == ["/usr/bin/ls", "/bin/ls"]
    assert candidates("ls", None)[0] == "/usr/local/sbin/ls"


def test_deep_parsers() -> None:
    assert deep.parse_endpoint("198.18.0.1:51820") == "198.18.0.1:51820"
    assert deep.parse_endpoint("[fd00::1]:51820") == "[fd00::1]:51820"
    for bad in ("hub.example:51820", "1.2.3.4", "1.2.3.4:0", "1.2.3.4:70000", ":51820"):
        with pytest.raises(FnError) as err:
            deep.parse_endpoint(bad)
        assert err.value.code == "rejected_args"
    assert str(deep.parse_address("10.42.0.10")) == "10.42.0.10/24"
    assert str(deep.parse_address("10.42.0.10/32")) == "10.42.0.10/32"
    with pytest.raises(FnError):
        deep.parse_address("10.42.0.300")
    assert deep.default_interface("0123456789abcdef" * 4) == "mc0123456789abc"
    assert len(deep.default_interface("f" * 64)) == 15


def test_uapi_keys() -> None:
    raw = bytes(range(32))
    b64 = base64.b64encode(raw).decode()
    assert uapi.key_hex(b64) == raw.hex()
    assert uapi.key_b64(raw.hex()) == b64
    for bad in ("not base64!", base64.b64encode(b"short").decode()):
        with pytest.raises(FnError) as err:
            uapi.key_hex(bad)
        assert err.value.code == "rejected_args"


def test_deep_identity_is_made_once_and_kept_private(state_dir: Path) -> None:
    first = deep.identity("web-1")
    again = deep.identity("web-1")
    assert first.public_key == again.public_key
    assert first.key_file.stat().st_mode & 0o777 == 0o600
    assert first.key_file.parent.stat().st_mode & 0o077 == 0
    assert deep.identity("web-2").public_key != first.public_key
    with pytest.raises(FnError) as err:
        deep.identity("other", create=False)
    assert err.value.code == "deep_not_enrolled"
    with pytest.raises(FnError) as err:
        deep.identity("../escape")
    assert err.value.code == "rejected_args"


def test_descendants_of_a_process_tree() -> None:
    ppids = {10: 1, 11: 10, 12: 11, 13: 10, 20: 1, 21: 20}
    assert sorted(descendants(10, ppids)) == [10, 11, 12, 13]
    assert descendants(99, ppids) == [99]


def test_exec_limits() -> None:
    check_limits(1, 0)
    for t, cap in ((0, 10), (-1, 10), (3601, 10), (1, -1), (1, 17 * 1024 * 1024)):
        with pytest.raises(FnError) as err:
            check_limits(t, cap)
        assert err.value.code == "rejected_args"


def test_hosts() -> None:
    assert resolve_host("/run/x.sock") == "unix:///run/x.sock"
    assert resolve_host("tcp://127.0.0.1:2375") == "tcp://127.0.0.1:2375"
    with pytest.raises(FnError):
        resolve_host("docker.sock")


def test_env_docker_host_is_used(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/nope.sock")
    assert resolve_host(None) == f"unix://{tmp_path}/nope.sock"
    with pytest.raises(FnError) as err:
        connect()
    assert err.value.code == "docker_unavailable"


def _api_error(status: int, text: str) -> docker.errors.APIError:
    resp = requests.Response()
    resp.status_code = status
    return docker.errors.APIError(text, response=resp, explanation=text)


def test_every_docker_error_is_mapped() -> None:
    nf = docker.errors.NotFound("x", explanation="No such container: web")
    assert map_error(nf, container="web").code == "container_not_found"
    assert map_error(nf).code == "docker_error"
    running = _api_error(409, "Container abc is not running")
    assert map_error(running, container="web").code == "container_not_running"
    assert map_error(_api_error(500, "boom")).code == "docker_error"
    assert map_error(requests.exceptions.ConnectionError("refused")).code == "docker_unavailable"
    assert map_error(requests.exceptions.ReadTimeout("slow")).code == "docker_unavailable"
    assert map_error(docker.errors.DockerException("bad")).code == "docker_unavailable"
    assert map_error(ValueError("odd")).code == "docker_error"
    mine = FnError("rejected_args", "x")
    assert map_error(mine) is mine


def test_no_docker_exception_class_is_left_unmapped() -> None:
    """httpx-style: every exception class of the SDK maps to one of our codes."""
    known = {"docker_unavailable", "container_not_found", "container_not_running", "docker_error"}
    classes = [
        obj
        for obj in vars(docker.errors).values()
        if isinstance(obj, type) and issubclass(obj, docker.errors.DockerException)
    ]
    assert len(classes) > 10
    for cls in classes:
        exc: Exception | None = None
        for args in (("x",), ("x", None), ("x", None, None), (None, 1, "cmd", "img", b"err"), ()):
            try:
                exc = cls(*args)
                break
            except TypeError:
                continue
        assert exc is not None, f"cannot build {cls.__name__} for the test"
        assert map_error(exc, container="web").code in known, cls


def test_stale_uapi_socket_is_detected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    monkeypatch.setattr(uapi, "SOCKET_DIR", tmp_path)
    live = socket.socket(socket.AF_UNIX)
    live.bind(str(tmp_path / "live0.sock"))
    live.listen(1)
    dead = socket.socket(socket.AF_UNIX)
    dead.bind(str(tmp_path / "dead0.sock"))
    dead.close()
    try:
        assert uapi.is_stale("dead0") is True
        assert uapi.is_stale("live0") is False
        assert uapi.is_stale("absent0") is False
    finally:
        live.close()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("mesh_address", "10.42.0.999/24"),
        ("hub_public_key", "short"),
        ("hub_endpoint", "hub.example:51820"),
        ("allowed_ips", ["10.42.0.0/33"]),
        ("keepalive", 70000),
        ("interface", "much-too-long-name"),
        ("host_netns", "/run/netns/does-not-exist-xyz"),
    ],
)
def test_attach_refuses_bad_input_before_touching_anything(field: str, value: object) -> None:
    from types import SimpleNamespace

    kwargs: dict[str, object] = {
        "mesh_address": "10.42.0.10/24",
        "hub_public_key": base64.b64encode(b"k" * 32).decode(),
        "hub_endpoint": "198.18.0.1:51820",
    }
    kwargs[field] = value
    # Validation comes first: the container is only read for its name and id.
    fake = SimpleNamespace(name="web", id="0" * 64)
    with pytest.raises(FnError) as err:
        deep.attach(fake, **kwargs)  # type: ignore[arg-type]
    assert err.value.code == "rejected_args"
