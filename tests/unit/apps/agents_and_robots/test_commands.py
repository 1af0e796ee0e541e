"""The command grammar: each command, its arguments, its errors, the room rules."""

from __future__ import annotations

import pytest

from meshagents.apps.agents_and_robots.commands import (
    MAX_COMMAND_CHARS,
    SPECS,
    Command,
    ParseError,
    lookup,
    nearest,
    parse,
    render,
    room_error,
)

pytestmark = pytest.mark.unit


def ok(text: str) -> Command:
    result = parse(text)
    assert isinstance(result, Command), result
    return result


def err(text: str, code: str) -> ParseError:
    result = parse(text)
    assert isinstance(result, ParseError), result
    assert result.code == code, result
    return result


@pytest.mark.parametrize(
    ("text", "name", "capability", "args"),
    [
        ("!help", "help", None, {}),
        ("!help docker logs", "help", None, {"topic": "docker logs"}),
        ("!exec ls -la /home/operator", "exec", "shell.exec", {"argv": ["ls", "-la", "/home/operator"]}),
        ("!ls /var/log", "ls", "fs.list", {"path": "/var/log"}),
        ("!fs.list /var/log", "ls", "fs.list", {"path": "/var/log"}),
        ("!fs.read /etc/hostname", "fs.read", "fs.read", {"path": "/etc/hostname"}),
        (
            "!fs.write /tmp/a hello world",
            "fs.write",
            "fs.write",
            {"path": "/tmp/a", "content": "hello world"},
        ),
        ("!docker ps", "docker ps", "docker.container.list", {}),
        ("!docker ps --all", "docker ps", "docker.container.list", {"all": 1}),
        (
            "!docker exec web ps aux",
            "docker exec",
            "docker.container.exec",
            {"container": "web", "argv": ["ps", "aux"]},
        ),
        (
            "!docker logs web",
            "docker logs",
            "docker.container.logs",
            {"container": "web", "tail": 100},
        ),
        (
            "!docker logs web --tail 5 --follow 10",
            "docker logs",
            "docker.container.logs",
            {"container": "web", "tail": 5, "follow_s": 10},
        ),
        (
            "!docker logs --tail=7 web",
            "docker logs",
            "docker.container.logs",
            {"container": "web", "tail": 7},
        ),
        (
            "!docker.logs web -n 3",
            "docker logs",
            "docker.container.logs",
            {"container": "web", "tail": 3},
        ),
        ("!sensors", "sensors", "sensors", {}),
        ("!camera.snapshot", "camera.snapshot", "camera.snapshot", {}),
        ("!info", "info", "system.info", {}),
        ("!system.info", "info", "system.info", {}),
        ("!status", "status", None, {}),
        ("!pending", "pending", None, {}),
        ("!approve K309X1", "approve", None, {"id": "K309X1"}),
        ("!approve k3o9xl", "approve", None, {"id": "K309X1"}),
        ("!deny k309-x1", "deny", None, {"id": "K309X1"}),
        ("!revoke old-laptop", "revoke", None, {"device": "old-laptop", "confirm": None}),
        (
            "!revoke old-laptop --confirm abc234",
            "revoke",
            None,
            {"device": "old-laptop", "confirm": "ABC234"},
        ),
        (
            "!revoke --confirm=ABC234 old-laptop",
            "revoke",
            None,
            {"device": "old-laptop", "confirm": "ABC234"},
        ),
    ],
)
def test_each_command(text: str, name: str, capability: str | None, args: dict[str, object]) -> None:
    cmd = ok(text)
    assert (cmd.name, cmd.capability, cmd.args, cmd.raw) == (name, capability, args, text)
    assert cmd.is_local == (capability is None)


def test_no_shell_meaning() -> None:
    # ; | $() backticks # and newlines are plain characters inside words
    cmd = ok("!exec echo a;rm -rf / | cat $(id) `id` #c")
    assert cmd.args["argv"] == ["echo", "a;rm", "-rf", "/", "|", "cat", "$(id)", "`id`", "#c"]
    assert ok("!exec ls\nrm").args["argv"] == ["ls", "rm"]
    assert ok("!exec printf '%s\\n' \"a b\" c\\ d").args["argv"] == ["printf", "%s\\n", "a b", "c d"]
    assert ok("!exec echo ''").args["argv"] == ["echo", ""]


def test_case_and_whitespace() -> None:
    assert ok("  !EXEC ls").name == "exec"
    assert ok("!Docker PS").name == "docker ps"
    assert ok("! status").name == "status"
    assert ok("!status   ").args == {}


def test_not_a_command_and_empty() -> None:
    err("hello there", "not_a_command")
    err("", "not_a_command")
    err("exec ls", "not_a_command")
    err("!", "empty")
    err("!   ", "empty")
    err("!''", "empty")
    assert isinstance(parse(None), ParseError)  # type: ignore[arg-type]


def test_unknown_command_suggests_nearest() -> None:
    e = err("!exce ls", "unknown_command")
    assert e.suggestions[0] == "exec"
    assert "did you mean !exec?" in e.reply_text()
    assert err("!stauts", "unknown_command").suggestions[0] == "status"
    assert err("!aprove X", "unknown_command").suggestions[0] == "approve"
    assert set(err("!docker rm web", "unknown_command").suggestions) <= {
        "docker ps",
        "docker exec",
        "docker logs",
    }
    e = err("!zzzzzzzz", "unknown_command")
    assert e.suggestions == () and "try !help" in e.reply_text()
    assert nearest("fs.reed") == ("fs.read", "fs.write")[: len(nearest("fs.reed"))]


def test_unknown_command_text_is_one_safe_line() -> None:
    e = err("!bad\x1b[31mname", "unknown_command")
    assert "\x1b" not in e.message
    e = err("!" + "x" * 500, "unknown_command")
    assert len(e.message) < 120


@pytest.mark.parametrize(
    "text",
    [
        "!exec",
        "!exec ''",
        "!ls",
        "!ls a b",
        "!ls relative/path",
        "!fs.read",
        "!fs.read ~/.ssh/id_ed25519",
        "!fs.write",
        "!fs.write /tmp/a",
        "!fs.write relative hi",
        "!docker",
        "!docker exec",
        "!docker exec web",
        "!docker exec 'bad name' ls",
        "!docker logs",
        "!docker logs web --tail",
        "!docker logs web --tail x",
        "!docker logs web --tail 0",
        "!docker logs web --tail 10001",
        "!docker logs web --follow 301",
        "!docker logs web --tail 1 --tail 2",
        "!docker logs web other",
        "!docker logs web --since 1h",
        "!docker logs web --tail ٣",
        "!docker logs web --tail 1_0",
        "!docker ps -q",
        "!sensors now",
        "!status x",
        "!approve",
        "!approve A B",
        "!approve too-long-id",
        "!approve UUUUUU",
        "!revoke",
        "!revoke a b",
        "!revoke a --confirm",
        "!revoke a --confirm x",
        "!revoke a --force",
        "!revoke 'a b'",
        "!exec 'unbalanced",
        "!exec trailing\\",
        "!docker 'x",
        "!exec ls \x00",
        "!ls /tmp/\x00",
    ],
)
def test_bad_arguments(text: str) -> None:
    e = err(text, "bad_arguments")
    assert e.message
    if e.command in {s.name for s in SPECS}:
        assert e.usage == lookup(e.command).usage  # type: ignore[union-attr]
    assert "usage:" in e.reply_text() or e.usage is None


def test_too_long() -> None:
    err("!exec " + "a" * MAX_COMMAND_CHARS, "too_long")


def test_fs_write_content_forms() -> None:
    assert ok("!fs.write /tmp/a it's fine, really").args["content"] == "it's fine, really"
    assert ok("!fs.write /tmp/a 'one quoted word'").args["content"] == "one quoted word"
    assert ok('!fs.write /tmp/a "it\'s"').args["content"] == "it's"
    assert ok("!fs.write /tmp/a ''").args["content"] == ""
    assert ok("!fs.write /tmp/a 'two' 'words'").args["content"] == "'two' 'words'"
    assert ok("!fs.write /tmp/a 'unbalanced").args["content"] == "'unbalanced"
    assert ok("!fs.write /tmp/a\nline 1\nline 2\n").args["content"] == "line 1\nline 2\n"
    assert ok("!fs.write /tmp/a  \nline").args["content"] == "line"
    assert ok("!fs.write /tmp/a\r\nline").args["content"] == "line"
    assert ok("!fs.write /tmp/a\n```ini\n[x]\na = 1\n```").args["content"] == "[x]\na = 1\n"
    assert ok("!fs.write /tmp/a ```\n```").args["content"] == ""
    assert ok("!fs.write '/tmp/with space' x").args == {"path": "/tmp/with space", "content": "x"}
    assert ok("!fs.write C:\\\\temp\\\\a.txt x").args["path"] == "C:\\temp\\a.txt"
    # a ; or $() in the content is content
    assert ok("!fs.write /tmp/a $(reboot); rm -rf /").args["content"] == "$(reboot); rm -rf /"


def test_render_canonical() -> None:
    assert render(ok("!exec  ls   -la")) == "!exec ls -la"
    assert render(ok("!docker logs web")) == "!docker logs web --tail 100"
    assert render(ok("!fs.write /tmp/a it's")) == "!fs.write /tmp/a 'it'\"'\"'s'"
    assert ok("!exec ls").render() == "!exec ls"
    for text in [
        "!help",
        "!help exec",
        "!docker ps -a",
        "!approve K309X1",
        "!revoke x --confirm ABC234",
        "!sensors",
        "!ls '/a b'",
    ]:
        assert render(ok(text)) == text
        assert parse(render(ok(text))) == ok(text)


def test_room_rules() -> None:
    assert room_error(ok("!exec ls"), "device") is None
    e = room_error(ok("!exec ls"), "approvals")
    assert e is not None and e.code == "wrong_room" and "device room" in e.message
    e = room_error(ok("!approve K309X1"), "device")
    assert e is not None and e.code == "wrong_room" and "#operator-approvals" in e.message
    assert room_error(ok("!revoke x"), "device") is not None
    for name in ("help", "status", "pending"):
        cmd = ok("!" + name)
        assert room_error(cmd, "device") is None and room_error(cmd, "approvals") is None


def test_to_fn_error() -> None:
    e = err("!exce ls", "unknown_command").to_fn_error()
    assert e.code == "unknown_command" and e.details["suggestions"] == ["exec"]


def test_spec_table_is_consistent() -> None:
    names = [s.name for s in SPECS]
    assert len(names) == len(set(names))
    aliases = [a for s in SPECS for a in s.aliases]
    assert not set(aliases) & set(names) and len(aliases) == len(set(aliases))
    for spec in SPECS:
        assert spec.usage.startswith("!" + spec.name)
        example = parse(spec.example)
        assert isinstance(example, Command) and example.name == spec.name, spec.example


def test_overlong_command_name_is_cheap() -> None:
    import time

    t0 = time.perf_counter()
    e = err("!" + "q" * 65000, "unknown_command")
    assert time.perf_counter() - t0 < 0.05
    assert e.suggestions == () and len(e.message) < 100


def test_smart_dashes_in_options() -> None:
    assert ok("!docker logs web —tail 5 –follow 3").args == {"container": "web", "tail": 5, "follow_s": 3}
    assert ok("!docker ps —all").args == {"all": 1}
    assert ok("!revoke pi —confirm ABC234").args == {"device": "pi", "confirm": "ABC234"}
    # arguments are never rewritten
    assert ok("!exec echo —tail").args["argv"] == ["echo", "—tail"]


def test_reply_fallback_is_stripped() -> None:
    from meshagents.apps.agents_and_robots.commands import strip_reply_fallback

    body = "> <@bot:hub> approval needed: request K309X1\n> device: pi\n\n!approve K309X1"
    assert strip_reply_fallback(body) == "!approve K309X1"
    assert strip_reply_fallback("!exec ls") == "!exec ls"
    assert strip_reply_fallback("> quoted chat\n\n!exec ls") == "> quoted chat\n\n!exec ls"


def test_arguments_must_be_signable() -> None:
    assert "NFC" in err("!exec ls e\u0301", "bad_arguments").message
    assert "surrogate" in err("!fs.write /tmp/a \ud800", "bad_arguments").message
    assert ok("!exec echo \u00e9 日本").args["argv"] == ["echo", "\u00e9", "日本"]
