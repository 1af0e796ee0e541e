"""The bot's command grammar as a pure parser, and the manifest pre-check.

    parse(text) -> Command | ParseError          never raises for any str
    strip_reply_fallback(body) -> str            drop a Matrix reply fallback first
    render(command) -> str                       parse(render(c)) == c
    room_error(command, room) -> ParseError | None
    resolve_capability(command, view) -> str     !exec ls -> shell.exec.ls (or shell.exec)
    precheck(command, view) -> Precheck          fast refusal text for the room
    precheck_text(command, view) -> str | None
    view_from_manifest(manifest) -> view         from a trust-core Manifest (or its dict)

Words are split with POSIX shell rules (``shlex``: quotes, backslashes) and nothing
else: no globbing, no variables, no ``;`` or ``|`` meaning, no comments, and no shell
ever runs them. ``!exec ls;rm -rf /`` is the argv ``["ls;rm", "-rf", "/"]``.

Each capability command's own rules (``!fs.write <path> <content>`` takes the rest
of the message as its content, ``!docker logs`` its options, ...) are in its spec's
module, ``meshagents/capabilities/<module>.py``.

``ParseError.code`` is a stable contract: ``not_a_command`` (no leading ``!``),
``empty`` (a bare ``!``), ``unknown_command`` (with the nearest commands),
``bad_arguments`` (with the usage), ``too_long``, and ``wrong_room`` from
``room_error``.

The commands that ask a device for something are read from the capability specs
(``meshagents.capabilities``: name, usage, example, argument parser and its inverse,
shared with the device agent); only the bot's own commands (help, status, pending,
approve, deny, revoke) are defined here. Arguments are shaped for the trust core's
``decide()``, which refuses any key a capability does not declare: ``argv`` (list),
``path``, ``content``, ``container`` (string, a ``values`` entry), ``tail`` /
``follow_s`` / ``all`` (integers, ``limits`` entries). Optional ones are left out
unless typed: ``!docker ps`` is ``{}``, ``!docker ps -a`` is ``{"all": 1}``;
``!docker logs web`` is ``{"container": "web", "tail": 100}`` and gains ``follow_s`` only with ``--follow``.

The pre-check works on a manifest-like view ``{capability: {"requires_approval":
bool, "executables": [...], "values": {"container": [...]}, ...}}`` (the trust core's
capability fields; ``view_from_manifest`` builds it, ``allowed_executables`` is read
as a synonym) and only gives the operator a fast, readable refusal. The decision
that counts is the trust core's ``manifest.decide()`` on the signed manifest (the
bot runs it before signing) and, after that, the device's own check of the envelope.
"""

from __future__ import annotations

import difflib
import posixpath
import re
import shlex
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from meshagents import capabilities
from meshagents.apps.agents_and_robots.ids import normalize_request_id
from meshagents.capabilities.docker_logs import DEFAULT_LOG_TAIL as DEFAULT_LOG_TAIL
from meshagents.capabilities.docker_logs import MAX_FOLLOW_S as MAX_FOLLOW_S
from meshagents.capabilities.docker_logs import MAX_LOG_TAIL as MAX_LOG_TAIL
from meshagents.capabilities.spec import CapabilitySpec
from meshagents.capabilities.words import MAX_ARGV as MAX_ARGV
from meshagents.capabilities.words import MAX_PATH_CHARS as MAX_PATH_CHARS
from meshagents.capabilities.words import BadArguments as _Bad
from meshagents.capabilities.words import CountingReader as _CountingReader
from meshagents.capabilities.words import label as _label
from meshagents.capabilities.words import lexer as _lexer
from meshagents.capabilities.words import no_args as _no_args
from meshagents.capabilities.words import option as _option
from meshagents.capabilities.words import split as _split
from meshagents.errors import FnError

PREFIX = "!"
MAX_COMMAND_CHARS = 65536  # a Matrix event is at most 64 KiB anyway
MAX_NAME_CHARS = 128

RoomKind = Literal["device", "approvals"]
ParseCode = Literal["not_a_command", "empty", "unknown_command", "bad_arguments", "too_long", "wrong_room"]
ManifestView = Mapping[str, Mapping[str, Any]]

_DEVICE: frozenset[RoomKind] = frozenset({"device"})
_APPROVALS: frozenset[RoomKind] = frozenset({"approvals"})
_BOTH: frozenset[RoomKind] = frozenset({"device", "approvals"})
_DEVICE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_TOPIC_RE = re.compile(r"[A-Za-z0-9._-]{1,40}")


@dataclass(frozen=True)
class CommandSpec:
    """One command of the grammar: what it is called, what it asks of the device.

    A command with a ``capability`` is that capability's spec
    (``meshagents.capabilities``, shared with the device agent) seen from the chat; the
    others are the bot's own (help, status, approvals, revoke)."""

    name: str
    capability: str | None
    usage: str
    summary: str
    example: str
    rooms: frozenset[RoomKind]
    aliases: tuple[str, ...] = ()
    #: the text after the command -> its arguments (raises BadArguments)
    parse: Callable[[str], dict[str, Any]] = field(default=lambda rest: {}, compare=False, repr=False)
    #: arguments -> the text after the command
    render: Callable[[Mapping[str, Any]], str] = field(default=lambda args: "", compare=False, repr=False)
    #: the capability's spec, for a capability command
    capability_spec: CapabilitySpec | None = field(default=None, compare=False, repr=False)

    @classmethod
    def of(cls, spec: CapabilitySpec) -> CommandSpec:
        """The chat command of a device capability (device rooms only)."""
        return cls(spec.command, spec.name, spec.usage, spec.summary, spec.example, _DEVICE, spec.aliases,
                   spec.parse, spec.render, spec)


def _words_parser(parse_words: Callable[[list[str]], dict[str, Any]]) -> Callable[[str], dict[str, Any]]:
    return lambda rest: parse_words(_split(rest))


def _local(name: str, usage: str, summary: str, example: str, rooms: frozenset[RoomKind],
           parse_words: Callable[[list[str]], dict[str, Any]],
           render: Callable[[Mapping[str, Any]], str] = lambda args: "") -> CommandSpec:
    return CommandSpec(name, None, usage, summary, example, rooms, (), _words_parser(parse_words), render)


def _help(words: list[str]) -> dict[str, Any]:
    if not words:
        return {}
    if len(words) > 2 or not all(_TOPIC_RE.fullmatch(w) for w in words):
        raise _Bad("!help takes a command name, e.g. !help exec or !help docker logs")
    return {"topic": " ".join(w.lower() for w in words)}


def _request_id(words: list[str]) -> dict[str, Any]:
    if len(words) != 1:
        raise _Bad("needs exactly one request id")
    rid = normalize_request_id(words[0])
    if rid is None:
        raise _Bad(f"not a request id: {_label(words[0])} (6 letters and digits, shown in the request)")
    return {"id": rid}


def _revoke(words: list[str]) -> dict[str, Any]:
    device: str | None = None
    confirm: str | None = None
    i = 0
    while i < len(words):
        word = _option(words[i])
        if word == "--confirm" or word.startswith("--confirm="):
            if confirm is not None:
                raise _Bad("--confirm given twice")
            _, eq, inline = word.partition("=")
            value = inline if eq else (words[i + 1] if i + 1 < len(words) else "")
            i += 0 if eq else 1
            code = normalize_request_id(value)
            if code is None:
                raise _Bad("--confirm needs the code the bot gave (ask again with !revoke <device>)")
            confirm = code
        elif word.startswith("-"):
            raise _Bad(f"unknown option {_label(word)}")
        elif device is None:
            if not _DEVICE_RE.fullmatch(word):
                raise _Bad(f"not a device name: {_label(word)}")
            device = word
        else:
            raise _Bad("one device at a time")
        i += 1
    if device is None:
        raise _Bad("needs a device name")
    return {"device": device, "confirm": confirm}


def _render_revoke(a: Mapping[str, Any]) -> str:
    return shlex.quote(a["device"]) + (f" --confirm {a['confirm']}" if a.get("confirm") else "")


SPECS: tuple[CommandSpec, ...] = (
    _local("help", "!help [command]", "this room's device, its capabilities and the commands",
           "!help docker logs", _BOTH, _help, lambda a: str(a.get("topic", ""))),
    # every device capability, from its one spec (meshagents/capabilities/)
    *(CommandSpec.of(spec) for spec in capabilities.SPECS),
    _local("status", "!status", "mesh and agent state (all devices in the approvals room)", "!status", _BOTH,
           _no_args),
    _local("pending", "!pending", "requests waiting for approval", "!pending", _BOTH, _no_args),
    _local("approve", "!approve <id>", "approve a pending request (or react 👍)", "!approve K309X1",
           _APPROVALS, _request_id, lambda a: str(a["id"])),
    _local("deny", "!deny <id>", "deny a pending request (or react 👎)", "!deny K309X1", _APPROVALS,
           _request_id, lambda a: str(a["id"])),
    _local("revoke", "!revoke <device> [--confirm <code>]",
           "revoke a device for good; the bot answers with a code to confirm with", "!revoke old-laptop",
           _APPROVALS, _revoke, _render_revoke),
)
SPEC_BY_NAME: dict[str, CommandSpec] = {s.name: s for s in SPECS}
_LOOKUP: dict[str, CommandSpec] = {**{a: s for s in SPECS for a in s.aliases}, **SPEC_BY_NAME}


def lookup(name: str) -> CommandSpec | None:
    """The spec for a command name or alias (``docker logs``, ``docker.logs``), any case."""
    return _LOOKUP.get(" ".join(name.lower().split()))


DOCKER_SUBCOMMANDS = tuple(s.name.split(" ", 1)[1] for s in SPECS if s.name.startswith("docker "))


@dataclass(frozen=True)
class Command:
    """A parsed command. ``capability`` is the manifest capability it asks for, or
    None for a command the bot answers itself (help, status, approvals, revoke)."""

    name: str
    capability: str | None
    args: dict[str, Any] = field(hash=False)
    raw: str = field(default="", compare=False)

    @property
    def spec(self) -> CommandSpec:
        return SPEC_BY_NAME[self.name]

    @property
    def is_local(self) -> bool:
        return self.capability is None

    def render(self) -> str:
        return render(self)


@dataclass(frozen=True)
class ParseError:
    """Why a text is not a command, with a stable ``code`` and a reply for the room."""

    code: ParseCode
    message: str
    raw: str = field(default="", compare=False)
    command: str | None = None
    usage: str | None = None
    suggestions: tuple[str, ...] = ()

    def reply_text(self) -> str:
        parts = [self.message]
        if self.suggestions:
            parts.append("did you mean " + ", ".join(PREFIX + s for s in self.suggestions) + "?")
        if self.usage:
            parts.append("usage: " + self.usage)
        if self.code == "unknown_command" and not self.suggestions:
            parts.append("try !help")
        return " — ".join(parts)

    def to_fn_error(self) -> FnError:
        return FnError(self.code, self.message, command=self.command, usage=self.usage,
                       suggestions=list(self.suggestions))


def strip_reply_fallback(body: str) -> str:
    """The message without a Matrix reply fallback (``> <@user:hs> quoted`` lines and
    the blank line after them), so ``!approve`` written as a reply still parses."""
    if not body.startswith("> <"):
        return body
    lines = body.split("\n")
    i = 0
    while i < len(lines) and lines[i].startswith(">"):
        i += 1
    if i < len(lines) and lines[i] == "":
        i += 1
    return "\n".join(lines[i:])


def parse(text: str) -> Command | ParseError:
    """Parse one message body. Any ``str`` gives a Command or a ParseError."""
    if not isinstance(text, str):
        return ParseError("not_a_command", "not text")
    body = text.lstrip()
    if not body.startswith(PREFIX):
        return ParseError("not_a_command", "commands start with !", raw=text)
    if len(text) > MAX_COMMAND_CHARS:
        return ParseError("too_long", f"a command is at most {MAX_COMMAND_CHARS} characters", raw=text)
    head = body[len(PREFIX):].lstrip().split(maxsplit=1)
    if head and len(head[0]) > MAX_NAME_CHARS:
        # no command is that long; skip shlex and difflib, which are slow on such words
        return ParseError("unknown_command", f"unknown command {PREFIX}{_label(head[0])}", raw=text,
                          command=_label(head[0]))
    reader = _CountingReader(body[len(PREFIX):])
    lex = _lexer(reader)
    try:
        word = lex.get_token()
    except ValueError as exc:
        return ParseError("bad_arguments", f"cannot split the command: {exc}", raw=text)
    if not word:
        return ParseError("empty", "an empty command; try !help", raw=text)
    name = word.lower()
    try:
        if name == "docker":
            sub = lex.get_token()
            if sub is None:
                usages = "; ".join(SPEC_BY_NAME["docker " + s].usage for s in DOCKER_SUBCOMMANDS)
                return ParseError("bad_arguments", "docker needs a subcommand", raw=text, command="docker",
                                  usage=usages)
            name = "docker " + sub.lower()
        spec = _LOOKUP.get(name)
        if spec is None:
            return ParseError("unknown_command", f"unknown command {PREFIX}{_label(name)}", raw=text,
                              command=_label(name), suggestions=nearest(name))
        try:
            args = spec.parse(reader.rest())
        except _Bad as exc:
            return ParseError("bad_arguments", str(exc), raw=text, command=spec.name, usage=spec.usage)
    except ValueError as exc:  # shlex: unbalanced quotes, trailing backslash
        known = _LOOKUP.get(name)
        return ParseError("bad_arguments", f"cannot split the command: {exc}", raw=text,
                          command=known.name if known else _label(name), usage=known.usage if known else None)
    unsignable = _unsignable(args)
    if unsignable:
        return ParseError("bad_arguments", unsignable, raw=text, command=spec.name, usage=spec.usage)
    return Command(spec.name, spec.capability, args, raw=text)


def _unsignable(value: Any) -> str:
    """Why ``value`` cannot go into a signed envelope, or "". Canonical JSON (the trust
    core) refuses strings that are not in Unicode NFC or hold lone surrogates: say so
    here, in the operator's words, rather than fail later."""
    if isinstance(value, str):
        if value.isascii():
            return ""
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return "an argument holds a broken character (a lone surrogate)"
        if not unicodedata.is_normalized("NFC", value):
            return "an argument is not in Unicode NFC (decomposed accents); retype it"
        return ""
    if isinstance(value, list):
        return next((why for v in value if (why := _unsignable(v))), "")
    if isinstance(value, dict):
        return next((why for v in value.values() if (why := _unsignable(v))), "")
    return ""


def nearest(name: str, n: int = 3) -> tuple[str, ...]:
    """The canonical commands closest to ``name`` (aliases count, canonical names shown)."""
    out: list[str] = []
    if len(name) > MAX_NAME_CHARS:
        return ()
    for match in difflib.get_close_matches(name, list(_LOOKUP), n=n * 3, cutoff=0.5):
        canonical = _LOOKUP[match].name
        if canonical not in out:
            out.append(canonical)
    if not out and name.startswith("docker "):
        out = ["docker " + s for s in DOCKER_SUBCOMMANDS]
    return tuple(out[:n])


def render(command: Command) -> str:
    """The canonical text of a command; ``parse(render(c)) == c``."""
    head = PREFIX + command.name
    tail = command.spec.render(command.args)
    return f"{head} {tail}" if tail else head


def room_error(command: Command, room: RoomKind) -> ParseError | None:
    """A ``wrong_room`` error when the command is not for this kind of room."""
    spec = command.spec
    if room in spec.rooms:
        return None
    where = "#operator-approvals" if spec.rooms == _APPROVALS else "a device room"
    return ParseError("wrong_room", f"{PREFIX}{spec.name} works in {where}", raw=command.raw,
                      command=spec.name, usage=spec.usage)


# ---- manifest pre-check ---------------------------------------------------------------

#: The capabilities granted per program too (``shell.exec.ls``): the family specs.
EXEC_FAMILIES = tuple(s.name for s in capabilities.SPECS if s.family)


@dataclass(frozen=True)
class Precheck:
    """The pre-check's answer. ``capability`` is the manifest capability the command
    resolves to (``shell.exec.ls`` for ``!exec ls`` when the manifest names programs);
    ``code`` follows the device's statuses (``rejected_capability`` / ``rejected_args``);
    ``text`` is the room reply when refused."""

    allowed: bool
    capability: str | None = None
    requires_approval: bool = False
    code: str | None = None
    text: str | None = None


def view_from_manifest(manifest: Any) -> dict[str, dict[str, Any]]:
    """The view of a trust-core ``Manifest`` (or its dict): ``{name: capability fields}``."""
    caps = manifest.get("capabilities", []) if isinstance(manifest, Mapping) else manifest.capabilities
    view: dict[str, dict[str, Any]] = {}
    for cap in caps:
        data = dict(cap) if isinstance(cap, Mapping) else cap.model_dump(mode="json")
        view[str(data["name"])] = data
    return view


def _program(argv0: str) -> str:
    return posixpath.basename(argv0.replace("\\", "/")) or argv0


def resolve_capability(command: Command, view: ManifestView) -> str | None:
    """The manifest capability a command asks for.

    Programs can be granted one by one (``shell.exec.ls``, ``docker.container.exec.ps``)
    or as one family capability with a whitelist (``shell.exec``): the per-program
    name wins when the manifest has it. When neither exists, the per-program name is
    returned, so the refusal names what is missing (``shell.exec.rm``).
    """
    cap = command.capability
    if cap in EXEC_FAMILIES and command.args.get("argv"):
        specific = f"{cap}.{_program(command.args['argv'][0])}"
        if specific in view or cap not in view:
            return specific
    return cap


def _whitelist(entry: Mapping[str, Any]) -> list[str] | None:
    for key in ("executables", "allowed_executables"):
        value = entry.get(key)
        if isinstance(value, list):
            return [str(v) for v in value]
    return None


def _executable_allowed(argv0: str, allowed: list[str]) -> bool:
    if argv0.startswith("/"):
        return argv0 in allowed  # the trust core refuses /bin/../bin/sh too
    if "/" in argv0 or "\\" in argv0:
        return False  # ./ls, bin/ls: relative paths never match a whitelist
    return argv0 in {posixpath.basename(a) for a in allowed}


def precheck(command: Command, view: ManifestView) -> Precheck:
    """Refuse at once what the manifest view plainly lacks; see the module docstring."""
    cap = resolve_capability(command, view)
    if cap is None:
        return Precheck(True)
    entry = view.get(cap)
    argv: list[str] | None = command.args.get("argv")
    if entry is None:
        if command.capability in EXEC_FAMILIES and argv:
            return Precheck(False, cap, code="rejected_capability",
                            text=f"capability rejected: {_label(cap, 96)} not in manifest")
        return Precheck(False, cap, code="rejected_capability", text=f"capability not in manifest: {cap}")
    needs_approval = bool(entry.get("requires_approval", False))
    if "container" in command.args:
        values = entry.get("values")
        choices = values.get("container") if isinstance(values, Mapping) else None
        if isinstance(choices, list) and command.args["container"] not in choices:
            name = _label(command.args["container"])
            return Precheck(False, cap, needs_approval, "rejected_args",
                            f"capability rejected: container {name} not in manifest")
    allowed = _whitelist(entry)
    if argv and allowed is not None and not _executable_allowed(argv[0], allowed):
        exe = _label(f"{command.capability}.{_program(argv[0])}", 96)
        return Precheck(False, cap, needs_approval, "rejected_args",
                        f"capability rejected: {exe} not in manifest")
    return Precheck(True, cap, needs_approval)


def precheck_text(command: Command, view: ManifestView) -> str | None:
    """The refusal text for the room, or None when the pre-check lets it through."""
    return precheck(command, view).text
