"""Chat words into capability arguments: the shared checks every argument parser uses.

Words are split with POSIX shell rules (``shlex``: quotes, backslashes) and nothing
else: no globbing, no variables, no ``;`` or ``|`` meaning, no comments, and no shell
ever runs them. A parser raises :class:`BadArguments` with a sentence for the operator;
the bot turns it into ``ParseError("bad_arguments")`` with the command's usage.
"""

from __future__ import annotations

import re
import shlex
from typing import Any

MAX_PATH_CHARS = 4096
MAX_ARGV = 256

NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
INT_RE = re.compile(r"[0-9]{1,9}")
WINDOWS_ABS_RE = re.compile(r"[A-Za-z]:[\\/]")


class BadArguments(Exception):
    """The words do not make this command's arguments; ``str(exc)`` says why."""


class CountingReader:
    """A text stream that knows how far shlex has read, so a parser can take the rest
    of the message verbatim after some words (``fs.write``'s content)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def read(self, n: int = -1) -> str:
        end = len(self.text) if n < 0 else min(len(self.text), self.pos + n)
        out = self.text[self.pos:end]
        self.pos = end
        return out

    def readline(self) -> str:  # only used for comments, which are switched off
        end = self.text.find("\n", self.pos)
        return self.read(-1 if end < 0 else end + 1 - self.pos)

    def rest(self) -> str:
        """What shlex has not read yet (it reads one character past each word)."""
        return self.text[self.pos:]


def lexer(reader: CountingReader) -> shlex.shlex:
    lex = shlex.shlex(reader, posix=True)  # type: ignore[arg-type]  # duck-typed stream
    lex.whitespace_split = True
    lex.commenters = ""  # '#' is an ordinary character: `!exec echo #1` keeps "#1"
    return lex


def take_words(lex: shlex.shlex) -> list[str]:
    out: list[str] = []
    while (tok := lex.get_token()) is not None:
        out.append(tok)
    return out


def split(rest: str) -> list[str]:
    """The words of ``rest``; ValueError on unbalanced quotes or a trailing backslash."""
    return take_words(lexer(CountingReader(rest)))


def label(text: str, limit: int = 64) -> str:
    """Untrusted text made safe to echo in one line of a room message."""
    cut = text if len(text) <= limit else text[: limit - 1] + "…"
    return "".join(ch if ch.isprintable() else "?" for ch in cut)


def option(word: str) -> str:
    """Phones and Macs turn ``--`` into a dash (smart punctuation): read ``—tail`` and
    ``–tail`` as ``--tail``. Only option words get this; arguments stay as typed."""
    if word[:1] in ("\u2014", "\u2013") and len(word) > 1 and word[1].isalpha():
        return "--" + word[1:]
    return word


def no_args(words: list[str]) -> dict[str, Any]:
    if words:
        raise BadArguments(f"takes no arguments (got {label(' '.join(words))})")
    return {}


def path(word: str) -> str:
    if not word:
        raise BadArguments("the path is empty")
    if "\x00" in word:
        raise BadArguments("the path holds a NUL character")
    if len(word) > MAX_PATH_CHARS:
        raise BadArguments(f"the path is longer than {MAX_PATH_CHARS} characters")
    if not (word.startswith("/") or WINDOWS_ABS_RE.match(word)):
        raise BadArguments(f"the path must be absolute (got {label(word)})")
    return word


def one_path(words: list[str]) -> dict[str, Any]:
    if len(words) != 1:
        raise BadArguments("needs exactly one path (quote a path with spaces)")
    return {"path": path(words[0])}


def argv(words: list[str], what: str) -> list[str]:
    if not words:
        raise BadArguments(f"needs {what}")
    if not words[0]:
        raise BadArguments("the program name is empty")
    if len(words) > MAX_ARGV:
        raise BadArguments(f"at most {MAX_ARGV} arguments")
    if any("\x00" in w for w in words):
        raise BadArguments("an argument holds a NUL character")
    return words


def container(word: str) -> str:
    if not NAME_RE.fullmatch(word):
        raise BadArguments(f"not a container name: {label(word)}")
    return word


def int_option(name: str, value: str | None, high: int) -> int:
    if value is None or not INT_RE.fullmatch(value):
        raise BadArguments(f"{name} needs a whole number")
    number = int(value)
    if number > high:
        raise BadArguments(f"{name} is at most {high}")
    return number
