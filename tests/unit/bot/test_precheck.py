"""The manifest pre-check and its exact room texts."""

from __future__ import annotations

from typing import Any

import pytest

from apps.agents_and_robots.commands import Command, parse, precheck, precheck_text

pytestmark = pytest.mark.unit

VIEW: dict[str, dict[str, Any]] = {
    "shell.exec": {"allowed_executables": ["/usr/bin/ls", "/bin/cat"], "requires_approval": False},
    "fs.read": {"path_prefixes": ["/home/operator"], "requires_approval": False},
    "fs.write": {"path_prefixes": ["/tmp"], "requires_approval": True},
    "docker.container.exec": {
        "containers": {"web": {"allowed_executables": ["/bin/ps"]}},
        "requires_approval": True,
    },
    "docker.container.list": {},
}


def cmd(text: str) -> Command:
    result = parse(text)
    assert isinstance(result, Command), result
    return result


def test_exec_not_whitelisted_exact_text() -> None:
    assert precheck_text(cmd("!exec rm -rf /"), VIEW) == "capability rejected: shell.exec.rm not in manifest"
    check = precheck(cmd("!exec /bin/rm x"), VIEW)
    assert (check.allowed, check.code, check.text) == (
        False,
        "rejected_args",
        "capability rejected: shell.exec.rm not in manifest",
    )


def test_capability_missing_text() -> None:
    check = precheck(cmd("!sensors"), VIEW)
    assert not check.allowed and check.code == "rejected_capability"
    assert check.text is not None and check.text.startswith("capability not in manifest")
    assert precheck_text(cmd("!camera.snapshot"), {}) == "capability not in manifest: camera.snapshot"


@pytest.mark.parametrize("text", ["!exec ls -la", "!exec /usr/bin/ls", "!exec cat /etc/hostname"])
def test_exec_whitelisted(text: str) -> None:
    check = precheck(cmd(text), VIEW)
    assert check.allowed and check.text is None and not check.requires_approval


@pytest.mark.parametrize(
    "text",
    [
        "!exec ./ls",
        "!exec bin/ls",
        "!exec /bin/../usr/bin/ls",
        "!exec /bin/ls",
        "!exec 'ls;rm'",
        "!exec sh -c ls",
    ],
)
def test_exec_tricks_refused(text: str) -> None:
    check = precheck(cmd(text), VIEW)
    assert not check.allowed and check.code == "rejected_args"
    assert check.text is not None and check.text.startswith("capability rejected: shell.exec.")


def test_refusal_text_is_one_safe_line() -> None:
    text = precheck_text(cmd("!exec 'rm\nreboot' x"), VIEW)
    assert text == "capability rejected: shell.exec.rm?reboot not in manifest"
    text = precheck_text(cmd("!exec " + "r" * 300), VIEW)
    assert text is not None and len(text) < 120


def test_approval_flag_and_local_commands() -> None:
    check = precheck(cmd("!fs.write /tmp/x hi"), VIEW)
    assert check.allowed and check.requires_approval
    for text in ("!help", "!status", "!pending", "!approve K309X1", "!revoke x"):
        assert precheck(cmd(text), {}).allowed


def test_docker_exec_per_container_whitelist() -> None:
    assert precheck(cmd("!docker exec web ps"), VIEW).allowed
    assert (
        precheck_text(cmd("!docker exec web rm x"), VIEW)
        == "capability rejected: docker.container.exec.rm not in manifest"
    )
    assert (
        precheck_text(cmd("!docker exec db ps"), VIEW) == "capability rejected: container db not in manifest"
    )
    star = {"docker.container.exec": {"containers": {"*": {"allowed_executables": ["/bin/ps"]}}}}
    assert precheck(cmd("!docker exec any ps"), star).allowed


def test_no_whitelist_in_view_defers_to_decide() -> None:
    # the view says nothing about programs: the trust core's decide() is the judge
    assert precheck(cmd("!exec anything"), {"shell.exec": {}}).allowed
    assert not precheck(cmd("!exec ls"), {"shell.exec": {"allowed_executables": []}}).allowed
