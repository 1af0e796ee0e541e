"""The manifest pre-check, capability resolution and the exact room texts."""

from __future__ import annotations

from typing import Any

import pytest

from meshagents.apps.agents_and_robots.commands import (
    Command,
    parse,
    precheck,
    precheck_text,
    resolve_capability,
    view_from_manifest,
)

pytestmark = pytest.mark.unit

# the trust core's capability fields: executables, path_prefixes, values, limits, ...
VIEW: dict[str, dict[str, Any]] = {
    "shell.exec.ls": {"executables": ["/bin/ls", "/usr/bin/ls"], "path_prefixes": ["/home"]},
    "shell.exec.cat": {"executables": ["/bin/cat"], "requires_approval": True},
    "fs.read": {"path_prefixes": ["/home/operator"], "requires_approval": False},
    "fs.write": {"path_prefixes": ["/tmp"], "requires_approval": True},
    "docker.container.exec": {
        "executables": ["/bin/ps"],
        "values": {"container": ["web"]},
        "requires_approval": True,
    },
    "docker.container.logs": {"values": {"container": ["web", "db"]}, "limits": {"tail": 1000}},
}
FAMILY: dict[str, dict[str, Any]] = {"shell.exec": {"allowed_executables": ["/usr/bin/ls", "/bin/cat"]}}


def cmd(text: str) -> Command:
    result = parse(text)
    assert isinstance(result, Command), result
    return result


def test_exec_not_in_manifest_exact_text() -> None:
    assert precheck_text(cmd("!exec rm -rf /"), VIEW) == "capability rejected: shell.exec.rm not in manifest"
    check = precheck(cmd("!exec /bin/rm x"), VIEW)
    assert (check.allowed, check.capability, check.code, check.text) == (
        False,
        "shell.exec.rm",
        "rejected_capability",
        "capability rejected: shell.exec.rm not in manifest",
    )
    # the same words with a family capability and a whitelist
    check = precheck(cmd("!exec rm -rf /"), FAMILY)
    assert (check.allowed, check.capability, check.code, check.text) == (
        False,
        "shell.exec",
        "rejected_args",
        "capability rejected: shell.exec.rm not in manifest",
    )


def test_capability_missing_text() -> None:
    check = precheck(cmd("!sensors"), VIEW)
    assert not check.allowed and check.code == "rejected_capability"
    assert check.text is not None and check.text.startswith("capability not in manifest")
    assert precheck_text(cmd("!camera.snapshot"), {}) == "capability not in manifest: camera.snapshot"


def test_resolution_per_program_then_family() -> None:
    assert resolve_capability(cmd("!exec ls /home"), VIEW) == "shell.exec.ls"
    assert resolve_capability(cmd("!exec /usr/bin/ls"), VIEW) == "shell.exec.ls"
    assert resolve_capability(cmd("!exec ls"), FAMILY) == "shell.exec"
    assert resolve_capability(cmd("!exec ls"), {}) == "shell.exec.ls"
    both = {**FAMILY, "shell.exec.ls": {"executables": ["/bin/ls"]}}
    assert resolve_capability(cmd("!exec ls"), both) == "shell.exec.ls"
    assert resolve_capability(cmd("!exec cat"), both) == "shell.exec"
    assert resolve_capability(cmd("!docker exec web ps"), VIEW) == "docker.container.exec"
    assert resolve_capability(cmd("!fs.read /x"), VIEW) == "fs.read"
    assert resolve_capability(cmd("!status"), VIEW) is None


@pytest.mark.parametrize(
    ("text", "view", "cap", "approval"),
    [
        ("!exec ls -la", VIEW, "shell.exec.ls", False),
        ("!exec /usr/bin/ls", VIEW, "shell.exec.ls", False),
        ("!exec cat /etc/hostname", VIEW, "shell.exec.cat", True),
        ("!exec ls", FAMILY, "shell.exec", False),
        ("!exec cat x", FAMILY, "shell.exec", False),
    ],
)
def test_exec_allowed(text: str, view: dict[str, dict[str, Any]], cap: str, approval: bool) -> None:
    check = precheck(cmd(text), view)
    assert (check.allowed, check.capability, check.requires_approval, check.text) == (
        True,
        cap,
        approval,
        None,
    )


@pytest.mark.parametrize("text", ["!exec ./ls", "!exec bin/ls", "!exec /bin/../usr/bin/ls", "!exec /sbin/ls"])
def test_exec_tricks_refused(text: str) -> None:
    check = precheck(cmd(text), VIEW)
    assert not check.allowed and check.code == "rejected_args"
    assert check.text == "capability rejected: shell.exec.ls not in manifest"


@pytest.mark.parametrize("text", ["!exec 'ls;rm'", "!exec sh -c ls"])
def test_exec_other_programs_refused(text: str) -> None:
    check = precheck(cmd(text), VIEW)
    assert (
        not check.allowed
        and check.text is not None
        and check.text.startswith("capability rejected: shell.exec.")
    )


def test_refusal_text_is_one_safe_line() -> None:
    assert (
        precheck_text(cmd("!exec 'rm\nreboot' x"), VIEW)
        == "capability rejected: shell.exec.rm?reboot not in manifest"
    )
    text = precheck_text(cmd("!exec " + "r" * 300), VIEW)
    assert text is not None and len(text) < 140


def test_approval_flag_and_local_commands() -> None:
    check = precheck(cmd("!fs.write /tmp/x hi"), VIEW)
    assert check.allowed and check.requires_approval and check.capability == "fs.write"
    for text in ("!help", "!status", "!pending", "!approve K309X1", "!revoke x"):
        check = precheck(cmd(text), {})
        assert check.allowed and check.capability is None


def test_docker_containers_and_programs() -> None:
    assert precheck(cmd("!docker exec web ps"), VIEW).allowed
    assert (
        precheck_text(cmd("!docker exec web rm x"), VIEW)
        == "capability rejected: docker.container.exec.rm not in manifest"
    )
    assert (
        precheck_text(cmd("!docker exec db ps"), VIEW) == "capability rejected: container db not in manifest"
    )
    assert precheck(cmd("!docker logs db --tail 5"), VIEW).allowed
    assert (
        precheck_text(cmd("!docker logs cache"), VIEW)
        == "capability rejected: container cache not in manifest"
    )
    assert precheck_text(cmd("!docker ps"), VIEW) == "capability not in manifest: docker.container.list"


def test_no_whitelist_in_view_defers_to_decide() -> None:
    # the view says nothing about programs: the trust core's decide() is the judge
    assert precheck(cmd("!exec anything"), {"shell.exec": {}}).allowed
    assert not precheck(cmd("!exec ls"), {"shell.exec": {"executables": []}}).allowed


def test_view_from_manifest_dict_and_model() -> None:
    manifest = {"capabilities": [{"name": "shell.exec.ls", "executables": ["/bin/ls"]}, {"name": "fs.read"}]}
    view = view_from_manifest(manifest)
    assert set(view) == {"shell.exec.ls", "fs.read"}
    assert precheck(cmd("!exec ls"), view).capability == "shell.exec.ls"

    class Cap:
        def __init__(self, data: dict[str, Any]) -> None:
            self.data = data

        def model_dump(self, mode: str = "python") -> dict[str, Any]:
            return dict(self.data)

    class Model:
        def __init__(self) -> None:
            self.capabilities = [Cap({"name": "sensors", "requires_approval": True})]

    assert view_from_manifest(Model()) == {"sensors": {"name": "sensors", "requires_approval": True}}
