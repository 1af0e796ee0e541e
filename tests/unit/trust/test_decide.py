"""The pure allow/deny decision: whitelist and path escapes, flags, values, limits, deny by default."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from meshagents.trust import manifest as M
from meshagents.trust.constraints import PathRefused, resolve_path
from meshagents.trust.models import Manifest

pytestmark = pytest.mark.unit


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """prefix/ with a file, a symlink out, a symlink in, and a secret outside."""
    prefix = tmp_path / "allowed"
    (prefix / "sub").mkdir(parents=True)
    (prefix / "sub" / "file.txt").write_text("ok")
    (tmp_path / "secret").write_text("no")
    (prefix / "out").symlink_to(tmp_path / "secret")
    (prefix / "outdir").symlink_to(tmp_path)
    (prefix / "in").symlink_to(prefix / "sub")
    (prefix / "proc").symlink_to("/proc/self/root")
    (prefix / "loop").symlink_to(prefix / "loop")
    return prefix


def ls(manifest: Manifest, *argv: str) -> M.Decision:
    return M.decide(manifest, "shell.exec.ls", {"argv": list(argv)})


def test_allowed_paths(tree: Path, make_manifest: Callable[..., Manifest]) -> None:
    m = make_manifest(tree)
    for argv in (
        ["ls", str(tree)],
        ["ls", "-la", str(tree / "sub")],
        ["ls", str(tree / "in" / "file.txt")],
        ["ls", "--", str(tree / "sub")],
        ["ls", str(tree / "sub" / ".." / "sub")],
    ):
        d = ls(m, *argv)
        assert d.allowed, (argv, d.reason)
        assert d.argv is not None and d.argv[0] in ("/bin/ls", "/usr/bin/ls")


@pytest.mark.parametrize(
    "arg",
    [
        "{t}/../secret",
        "{t}/sub/../../secret",
        "..",
        "../secret",
        "{t}/out",
        "{t}/outdir/secret",
        "{t}/proc/etc/passwd",
        "/proc/self/root{t}/sub",
        "/proc/self/cwd",
        "/dev/fd/0",
        "{t}/loop",
        "/etc/passwd",
        "{t}/sub\x00",
        "{t}-evil",
        "sub",
        ".",
        "etc/shadow",
    ],
)
def test_path_escapes_refused(tree: Path, make_manifest: Callable[..., Manifest], arg: str) -> None:
    d = ls(make_manifest(tree), "ls", arg.format(t=tree))
    assert not d.allowed and d.code == "rejected_args", d


@pytest.mark.parametrize(
    "argv0",
    [
        "./ls",
        "/bin/../bin/ls",
        "/bin//ls",
        "bin/ls",
        "ls;rm",
        "ls && rm",
        "$(rm)",
        "`rm`",
        "ls\x00",
        "/bin/./ls",
        "sh",
        "/bin/sh",
        "rm",
        "..",
        "",
        "ls ",
        " ls",
    ],
)
def test_whitelist_escapes_refused(tree: Path, make_manifest: Callable[..., Manifest], argv0: str) -> None:
    d = ls(make_manifest(tree), argv0, str(tree))
    assert not d.allowed and d.code == "rejected_args", d


def test_bin_dotdot_sh_refused_even_if_sh_whitelisted(make_manifest: Callable[..., Manifest]) -> None:
    caps = [{"name": "shell.exec.sh", "executables": ["/bin/sh"]}]
    m = make_manifest(capabilities=caps)
    assert M.decide(m, "shell.exec.sh", {"argv": ["/bin/sh"]}).allowed
    assert not M.decide(m, "shell.exec.sh", {"argv": ["/bin/../bin/sh"]}).allowed


def test_multicall_binary_does_not_widen(tmp_path: Path, make_manifest: Callable[..., Manifest]) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    multi = bindir / "multi"
    shutil.copy("/bin/true", multi)
    os.chmod(multi, 0o755)
    (bindir / "ls").symlink_to("multi")
    (bindir / "sh").symlink_to("multi")
    caps = [{"name": "x", "executables": [str(bindir / "ls")], "search_path": [str(bindir)]}]
    m = make_manifest(capabilities=caps)
    assert M.decide(m, "x", {"argv": ["ls"]}).argv == [str(bindir / "ls")]
    assert not M.decide(m, "x", {"argv": ["sh"]}).allowed
    assert not M.decide(m, "x", {"argv": [str(bindir / "sh")]}).allowed
    assert not M.decide(m, "x", {"argv": [str(multi)]}).allowed


def test_caller_path_is_never_used(
    tmp_path: Path, make_manifest: Callable[..., Manifest], monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = tmp_path / "ls"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    d = ls(make_manifest(tmp_path), "ls", str(tmp_path))
    assert d.allowed and d.argv is not None and d.argv[0] in ("/bin/ls", "/usr/bin/ls")


@pytest.mark.parametrize("flag", ["--color=always", "-I/etc", "-", "--a=b", "-f/etc/shadow"])
def test_flags_not_listed_are_refused(tree: Path, make_manifest: Callable[..., Manifest], flag: str) -> None:
    m = make_manifest(tree)
    assert not ls(m, "ls", flag, str(tree)).allowed


def test_flag_list(tree: Path, make_manifest: Callable[..., Manifest]) -> None:
    caps = [
        {"name": "shell.exec.ls", "executables": ["/bin/ls"], "path_prefixes": [str(tree)], "flags": ["-l"]}
    ]
    m = make_manifest(capabilities=caps)
    assert ls(m, "ls", "-l", str(tree)).allowed
    assert not ls(m, "ls", "-a", str(tree)).allowed


@pytest.mark.parametrize(
    ("capability", "args", "code"),
    [
        ("shell.exec.rm", {"argv": ["rm"]}, "rejected_capability"),
        ("shell.exec.ls", ["ls"], "rejected_args"),
        ("shell.exec.ls", {}, "rejected_args"),
        ("shell.exec.ls", {"argv": []}, "rejected_args"),
        ("shell.exec.ls", {"argv": "ls /tmp"}, "rejected_args"),
        ("shell.exec.ls", {"argv": ["ls", 1]}, "rejected_args"),
        ("shell.exec.ls", {"argv": ["ls"], "env": {"LD_PRELOAD": "x"}}, "rejected_args"),
        ("shell.exec.ls", {"argv": ["ls", 1.5]}, "rejected_args"),
        ("system.reboot", {"argv": ["true", "now"]}, "rejected_args"),
        ("docker.container.logs", {"container": "other"}, "rejected_args"),
        ("docker.container.logs", {"container": "web", "tail": 101}, "rejected_args"),
        ("docker.container.logs", {"tail": True}, "rejected_args"),
        ("docker.container.logs", {"tail": -1}, "rejected_args"),
    ],
)
def test_deny_by_default(
    make_manifest: Callable[..., Manifest], capability: str, args: Any, code: str
) -> None:
    d = M.decide(make_manifest(), capability, args)
    assert not d.allowed and d.code == code, d


def test_limits_and_approval_reported(make_manifest: Callable[..., Manifest]) -> None:
    m = make_manifest()
    d = M.decide(m, "docker.container.logs", {"container": "web", "tail": 100})
    assert d.allowed and d.extra == {"container": "web", "tail": 100}
    d = M.decide(m, "system.reboot", {"argv": ["true"]})
    assert d.allowed and d.requires_approval and d.timeout_s == 30 and d.output_cap_bytes == 65536
    assert not M.decide(m, "system.reboot", {"argv": ["true"]}, now=m.expires_at).allowed


def test_argument_length_and_count(tree: Path, make_manifest: Callable[..., Manifest]) -> None:
    caps = [
        {
            "name": "shell.exec.ls",
            "executables": ["/bin/ls"],
            "path_prefixes": [str(tree)],
            "max_args": 2,
            "max_arg_len": 200,
        }
    ]
    m = make_manifest(capabilities=caps)
    assert ls(m, "ls", str(tree), str(tree)).allowed
    assert not ls(m, "ls", str(tree), str(tree), str(tree)).allowed
    assert not ls(m, "ls", str(tree) + "/" + "a" * 300).allowed


def test_resolve_false_is_lexical(make_manifest: Callable[..., Manifest]) -> None:
    caps = [{"name": "c", "executables": ["/bin/ps", "/usr/bin/cat"], "path_prefixes": ["/data"]}]
    m = make_manifest(capabilities=caps)
    assert M.decide(m, "c", {"argv": ["ps"]}, resolve=False).argv == ["/bin/ps"]
    assert M.decide(m, "c", {"argv": ["cat", "/data/x"]}, resolve=False).allowed
    for argv in (["cat", "/data/../etc/passwd"], ["sh"], ["/bin/../bin/ps"], ["cat", "/proc/1/root/data"]):
        assert not M.decide(m, "c", {"argv": argv}, resolve=False).allowed, argv


def test_resolve_path_follows_like_the_kernel(tree: Path) -> None:
    assert resolve_path(str(tree / "in" / ".." / "sub")) == str(tree / "sub")
    assert resolve_path(str(tree / "out")) == str(tree.parent / "secret")
    with pytest.raises(PathRefused):
        resolve_path(str(tree / "loop"))
    with pytest.raises(PathRefused):
        resolve_path("/proc/self/root/etc")
