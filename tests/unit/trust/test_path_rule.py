"""The one argv/path rule (bot and device alike): relative paths, declared options with
arity, first-argument lists, and the property that nothing ``decide()`` accepts can
name a file outside the prefixes once resolved in the directory the program runs in."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meshagents.trust import manifest as M
from meshagents.trust.constraints import PathRefused
from meshagents.trust.models import Manifest

pytestmark = pytest.mark.unit

CAT = [p for p in ("/bin/cat", "/usr/bin/cat") if os.path.exists(p)]
TAR = [p for p in ("/bin/tar", "/usr/bin/tar") if os.path.exists(p)] or ["/bin/tar"]


def cat_cap(prefix: Path | str, **kw: Any) -> dict[str, Any]:
    return {"name": "shell.exec.cat", "executables": CAT, "path_prefixes": [str(prefix)], **kw}


def run(m: Manifest, cap: str, *argv: str, **kw: Any) -> M.Decision:
    return M.decide(m, cap, {"argv": list(argv)}, **kw)


# ------------------------------------------------------------------ the reported escapes
@pytest.mark.parametrize("resolve", [True, False])
def test_relative_paths_without_cwd_are_refused(
    make_manifest: Callable[..., Manifest], resolve: bool
) -> None:
    """`!exec cat etc/shadow` and `!exec ls -la .` with prefixes /home and /tmp (issue 16)."""
    caps = [
        cat_cap("/home") | {"path_prefixes": ["/home", "/tmp"]},
        {
            "name": "shell.exec.ls",
            "executables": ["/bin/ls", "/usr/bin/ls"],
            "path_prefixes": ["/home", "/tmp"],
            "flags": ["-l", "-a", "-la"],
        },
    ]
    m = make_manifest(capabilities=caps)
    for cap, argv in (("shell.exec.cat", ["cat", "etc/shadow"]), ("shell.exec.ls", ["ls", "-la", "."])):
        d = run(m, cap, *argv, resolve=resolve)
        assert not d.allowed and d.code == "rejected_args", d
        assert "relative" in d.reason
    d = run(m, "shell.exec.ls", "ls", "-la", resolve=resolve)
    assert d.allowed and d.cwd == "/home"  # no argument: it lists its first prefix, never /


def test_relative_paths_resolve_against_the_declared_cwd(
    tmp_path: Path, make_manifest: Callable[..., Manifest]
) -> None:
    (tmp_path / "in" / "etc").mkdir(parents=True)
    (tmp_path / "in" / "etc" / "shadow").write_text("not the real one")
    m = make_manifest(capabilities=[cat_cap(tmp_path / "in", cwd=str(tmp_path / "in"))])
    d = run(m, "shell.exec.cat", "cat", "etc/shadow")
    assert d.allowed and d.cwd == str(tmp_path / "in")
    for escape in ("../in/../../etc/shadow", "..", "../x", "/etc/shadow"):
        assert not run(m, "shell.exec.cat", "cat", escape).allowed, escape


def test_a_cwd_outside_the_prefixes_refuses_everything(
    tmp_path: Path, make_manifest: Callable[..., Manifest]
) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "up").symlink_to(tmp_path)
    for cwd in (str(tmp_path), str(tmp_path / "in" / "up")):
        m = make_manifest(capabilities=[cat_cap(tmp_path / "in", cwd=cwd)])
        d = run(m, "shell.exec.cat", "cat", str(tmp_path / "in"))
        assert not d.allowed and "cwd" in d.reason, d


# ------------------------------------------------------------------ options with arity
def test_undeclared_options_are_refused(make_manifest: Callable[..., Manifest]) -> None:
    m = make_manifest(capabilities=[cat_cap("/tmp")])  # flags: null = no option at all
    for opt in ("-n", "--number", "-A"):
        assert not run(m, "shell.exec.cat", "cat", opt, "/tmp/x").allowed
    assert run(m, "shell.exec.cat", "cat", "--", "/tmp/-n").allowed


def test_a_value_in_the_next_word_cannot_defeat_the_rule(make_manifest: Callable[..., Manifest]) -> None:
    caps = [
        {
            "name": "shell.exec.tar",
            "executables": TAR,
            "path_prefixes": ["/tmp"],
            "flags": ["-t", {"name": "-f", "arity": 1, "path": True}, {"name": "--checkpoint", "arity": 1}],
        }
    ]
    m = make_manifest(capabilities=caps)
    ok = {"resolve": False}
    assert run(m, "shell.exec.tar", "tar", "-t", "-f", "/tmp/a.tar", **ok).allowed
    assert run(m, "shell.exec.tar", "tar", "-t", "-f/tmp/a.tar", **ok).allowed
    assert run(m, "shell.exec.tar", "tar", "-t", "--checkpoint=5", "-f", "/tmp/a.tar", **ok).allowed
    for argv in (
        ["tar", "-t", "-f", "/etc/shadow"],  # the path value is a path
        ["tar", "-t", "-f/etc/shadow"],
        ["tar", "-t", "--checkpoint-action", "exec=sh", "-f", "/tmp/a"],  # undeclared
        ["tar", "-t", "--checkpoint-action=exec=sh"],
        ["tar", "-t", "-f"],  # a value is missing
        ["tar", "-t=1"],  # arity 0 takes no value
        ["tar", "-t", "--checkpoint", "5", "/etc"],  # the word after the value is a path again
    ):
        d = run(m, "shell.exec.tar", *argv, **ok)
        assert not d.allowed and d.code == "rejected_args", (argv, d)


def test_first_argument_list(make_manifest: Callable[..., Manifest]) -> None:
    caps = [
        {
            "name": "shell.exec.systemctl",
            "executables": ["/usr/bin/systemctl", "/bin/systemctl"],
            "subcommands": ["status", "is-active", "list-units"],
            "flags": ["--no-pager", {"name": "--type", "arity": 1}],
        }
    ]
    m = make_manifest(capabilities=caps)
    ok = {"resolve": False}
    assert run(m, "shell.exec.systemctl", "systemctl", "status", "ssh", **ok).allowed
    assert run(m, "shell.exec.systemctl", "systemctl", "--type", "service", "list-units", **ok).allowed
    for argv in (
        ["systemctl", "poweroff"],
        ["systemctl", "start", "ssh"],
        ["systemctl"],
        ["systemctl", "--type", "status", "poweroff"],  # the value is consumed: poweroff is first
        ["systemctl", "--root", "status", "poweroff"],
    ):
        assert not run(m, "shell.exec.systemctl", *argv, **ok).allowed, argv


def test_the_model_stays_additive(keys: Any) -> None:
    """A capability without the new fields signs to the very bytes it did before them."""
    from meshagents.trust.models import Capability

    old = {"name": "shell.exec.df", "executables": ["/bin/df"], "flags": ["-h"]}
    dumped = Capability.model_validate(old).model_dump(mode="json")
    assert "subcommands" not in dumped and dumped["flags"] == ["-h"]
    with_new = Capability.model_validate({**old, "subcommands": ["x"], "flags": [{"name": "-n"}]})
    assert with_new.model_dump(mode="json")["flags"] == [{"name": "-n", "arity": 1, "path": False}]


# ------------------------------------------------------------------ the property
PIECES = ["", ".", "..", "a", "b", "in", "out", "up", "loop", "etc", "shadow", "x", "-", "-n"]


def _words() -> st.SearchStrategy[str]:
    # @R/ and @P/ stand for the tree's root and the prefix (known only once the fixture ran)
    part = st.lists(st.sampled_from(PIECES), min_size=1, max_size=5)
    start = st.sampled_from(["", "/", "@R/", "@P/", "@P/a/"])
    return st.tuples(start, part).map(lambda t: t[0] + "/".join(t[1]))


@pytest.fixture(scope="module")
def fs() -> Iterator[Path]:
    """A small tree: prefix P (cwd P/a) with dirs, files and links that leave P."""
    root = Path(tempfile.mkdtemp(prefix="pathrule-"))
    p = root / "p"
    (p / "a" / "b").mkdir(parents=True)
    (p / "a" / "x").write_text("in")
    (root / "etc").mkdir()
    (root / "etc" / "shadow").write_text("out")
    (p / "a" / "out").symlink_to(root / "etc")
    (p / "a" / "up").symlink_to("..")
    (p / "a" / "b" / "in").symlink_to("../x")
    (p / "a" / "loop").symlink_to("loop")
    yield root
    shutil.rmtree(root)


def _inside(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix + "/")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(words=st.lists(_words(), max_size=4), use_cwd=st.booleans(), dashdash=st.booleans())
def test_property_accepted_paths_stay_inside(
    fs: Path, keys: Any, words: list[str], use_cwd: bool, dashdash: bool
) -> None:
    from tests.testbed.trust_keys import manifest_body

    prefix = str(fs / "p")
    words = [w.replace("@R/", f"{fs}/").replace("@P/", f"{prefix}/") for w in words]
    cap = cat_cap(prefix, flags=[{"name": "-n", "arity": 1}, "-A"])
    if use_cwd:
        cap["cwd"] = prefix + "/a"
    body = manifest_body(keys, capabilities=[cap])
    m = M.sign(body, keys.operator)
    argv = ["cat", *(["--"] if dashdash else []), *words]
    # The device's rule (resolve=True); the bot's lexical pre-check is weaker by design.
    for resolve in (True,):
        d = run(m, "shell.exec.cat", *argv, resolve=resolve)
        if not d.allowed:
            continue
        assert _inside(os.path.realpath(d.cwd), os.path.realpath(prefix))
        # the words the program reads as paths: everything after options/values
        paths, i, done = [], 1, dashdash
        items = argv[1:]
        if dashdash:
            items = items[1:]
        while i <= len(items):
            w = items[i - 1]
            if not done and w == "--":
                done = True
            elif not done and w == "-n":
                i += 1
            elif not done and w.startswith("-") and w != "-":
                pass
            else:
                paths.append(w)
            i += 1
        for w in paths:
            real = os.path.realpath(os.path.join(d.cwd, w))
            assert _inside(real, os.path.realpath(prefix)), (argv, w, real, resolve)


def test_a_fake_resolver_keeps_the_core_testable(make_manifest: Callable[..., Manifest]) -> None:
    links = {"/data/evil": "/etc"}

    def fake(path: str, cwd: str) -> str:
        full = M.lexical_path(path, cwd)
        for src, dst in links.items():
            if full == src or full.startswith(src + "/"):
                return dst + full[len(src) :]
        if "loop" in full:
            raise PathRefused("loop")
        return full

    m = make_manifest(capabilities=[cat_cap("/data", cwd="/data")])
    assert run(m, "shell.exec.cat", "cat", "ok", resolver=fake).allowed
    assert not run(m, "shell.exec.cat", "cat", "evil/shadow", resolver=fake).allowed
    assert not run(m, "shell.exec.cat", "cat", "loop", resolver=fake).allowed


# ------------------------------------------------------------------ the agent's own state
@pytest.mark.parametrize("prefix", ["/", "/var", "/var/lib", "/var/lib/meshagents", "/var/lib/meshagents/x"])
def test_signing_refuses_a_manifest_reaching_the_agent_state(keys: Any, prefix: str) -> None:
    from meshagents.errors import FnError
    from tests.testbed.trust_keys import manifest_body

    body = manifest_body(keys, capabilities=[{"name": "fs.read", "path_prefixes": [prefix]}])
    with pytest.raises(FnError) as err:
        M.sign(body, keys.operator)
    assert err.value.code == "manifest_covers_agent_state"
    assert "/var/lib/meshagents" in err.value.message


def test_the_state_check_covers_cwd_visible_and_callers_paths(keys: Any) -> None:
    from meshagents.errors import FnError
    from tests.testbed.trust_keys import manifest_body

    ok = manifest_body(keys, capabilities=[{"name": "fs.read", "path_prefixes": ["/var/lib/other", "/home"]}])
    M.sign(ok, keys.operator)
    for cap in (
        {"name": "shell.exec.x", "executables": ["/bin/true"], "cwd": "/var/lib/meshagents/device_agent"},
        {"name": "shell.exec.y", "executables": ["/bin/true"], "visible": ["/var/lib"]},
    ):
        with pytest.raises(FnError):
            M.sign(manifest_body(keys, capabilities=[cap]), keys.operator)
    home = manifest_body(keys, capabilities=[{"name": "fs.read", "path_prefixes": ["/home/op"]}])
    with pytest.raises(FnError) as err:
        M.sign(home, keys.operator, protected=("/home/op/.local/state/meshagents",))
    assert err.value.code == "manifest_covers_agent_state"
    signed = M.sign(home, keys.operator)
    assert M.agent_state_conflicts(signed, ["/home/op/.local/state/meshagents"]) == [
        "fs.read: /home/op covers /home/op/.local/state/meshagents"
    ]


def test_an_old_manifest_verifies_unchanged(keys: Any) -> None:
    """Signed before subcommands/visible existed (no such keys): still verifies exactly."""
    from tests.testbed.trust_keys import manifest_body

    signed = M.sign(manifest_body(keys), keys.operator).model_dump(mode="json")
    assert all("subcommands" not in c and "visible" not in c for c in signed["capabilities"])
    assert M.verify(signed, keys.op_pub).serial == 1
