"""Hypothesis: any string is a Command or a ParseError; rendered commands parse back."""

from __future__ import annotations

import shlex
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshagents.apps.agents_and_robots.commands import (
    MAX_FOLLOW_S,
    MAX_LOG_TAIL,
    SPECS,
    Command,
    ParseError,
    parse,
    precheck,
    render,
)
from meshagents.apps.agents_and_robots.dispatches import args_digest
from meshagents.apps.agents_and_robots.ids import ALPHABET

pytestmark = pytest.mark.unit

NAMES = sorted({s.name for s in SPECS} | {a for s in SPECS for a in s.aliases} | {"docker"})
word = st.text(alphabet=st.characters(blacklist_characters="\x00"), max_size=12)
any_text = st.one_of(
    st.text(),
    st.text().map(lambda t: "!" + t),
    st.tuples(
        st.sampled_from(NAMES),
        st.lists(
            st.one_of(
                word,
                st.sampled_from(
                    [
                        "'",
                        '"',
                        "\\",
                        "--tail",
                        "--follow",
                        "--confirm",
                        "-a",
                        "```",
                        "\n",
                        "0",
                        "10001",
                        "K309X1",
                        "—tail",
                        "–follow",
                        "> <@bot:hub> quoted\n\n",
                    ]
                ),
            ),
            max_size=6,
        ),
    ).map(lambda p: "!" + p[0] + " " + " ".join(p[1])),
)


@settings(max_examples=600, deadline=None)
@given(any_text)
def test_any_string_is_a_command_or_a_parse_error(text: str) -> None:
    result = parse(text)
    assert isinstance(result, (Command, ParseError))
    if isinstance(result, ParseError):
        assert result.code in {"not_a_command", "empty", "unknown_command", "bad_arguments", "too_long"}
        assert result.reply_text()
    else:
        # whatever parsed renders canonically and parses back to the same command
        assert parse(render(result)) == result
        precheck(result, {})  # the pre-check never raises either
        args_digest(result.args)  # and every command's arguments can be signed (canonical JSON)


# canonical JSON (what gets signed) wants NFC strings; the parser refuses others
safe_text = st.text(alphabet=st.characters(blacklist_characters="\x00", blacklist_categories=["Cs"])).map(
    lambda t: unicodedata.normalize("NFC", t)
)
arg = safe_text.filter(lambda s: len(s) <= 40)
program = arg.filter(bool)
path = st.builds(lambda t: "/" + t, arg)
container = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,20}", fullmatch=True)
device = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,30}", fullmatch=True)
rid = st.text(alphabet=ALPHABET, min_size=6, max_size=6)

commands = st.one_of(
    st.builds(
        lambda a: Command("exec", "shell.exec", {"argv": a}),
        st.lists(arg, max_size=5).flatmap(lambda rest: program.map(lambda p: [p, *rest])),
    ),
    st.builds(lambda p: Command("ls", "fs.list", {"path": p}), path),
    st.builds(lambda p: Command("fs.read", "fs.read", {"path": p}), path),
    st.builds(lambda p, c: Command("fs.write", "fs.write", {"path": p, "content": c}), path, safe_text),
    st.sampled_from(
        [
            Command("docker ps", "docker.container.list", {}),
            Command("docker ps", "docker.container.list", {"all": 1}),
        ]
    ),
    st.builds(
        lambda c, p, rest: Command(
            "docker exec", "docker.container.exec", {"container": c, "argv": [p, *rest]}
        ),
        container,
        program,
        st.lists(arg, max_size=4),
    ),
    st.builds(
        lambda c, t, f: Command(
            "docker logs",
            "docker.container.logs",
            {"container": c, "tail": t, **({"follow_s": f} if f else {})},
        ),
        container,
        st.integers(1, MAX_LOG_TAIL),
        st.integers(0, MAX_FOLLOW_S),
    ),
    st.builds(lambda i: Command("cancel", "control.cancel", {"request_id": i}),
              st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9_.:\-]{0,40}\Z")),
    st.builds(lambda i: Command("approve", None, {"id": i}), rid),
    st.builds(lambda i: Command("deny", None, {"id": i}), rid),
    st.builds(lambda d, c: Command("revoke", None, {"device": d, "confirm": c}), device, st.none() | rid),
    st.sampled_from(
        [
            Command(n, c, {})
            for n, c in [
                ("sensors", "sensors"),
                ("camera.snapshot", "camera.snapshot"),
                ("info", "system.info"),
                ("status", None),
                ("pending", None),
                ("help", None),
            ]
        ]
    ),
    st.builds(lambda s: Command("help", None, {"topic": s}), st.sampled_from([s.name for s in SPECS])),
)


@settings(max_examples=400, deadline=None)
@given(commands)
def test_round_trip(cmd: Command) -> None:
    text = render(cmd)
    back = parse(text)
    assert back == cmd, (text, back)
    assert isinstance(back, Command) and back.raw == text


@settings(max_examples=200, deadline=None)
@given(st.lists(arg, min_size=1, max_size=6))
def test_exec_argv_is_exactly_shlex_split(words: list[str]) -> None:
    text = "!exec " + shlex.join(words)
    result = parse(text)
    if words[0] == "":
        assert isinstance(result, ParseError) and result.code == "bad_arguments"
    else:
        assert isinstance(result, Command) and result.args["argv"] == words
