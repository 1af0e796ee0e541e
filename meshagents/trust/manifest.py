"""Capability manifests: sign, verify, remember serials, and the pure allow/deny decision.

Public API::

    sign(manifest: Manifest | dict, key: SigningKey, *, protected=AGENT_STATE_DIRS) -> Manifest
        # FnError manifest_covers_agent_state when a path of it reaches `protected`
    check_agent_state(manifest, protected, *, resolver=None)   # the device's check at load
    resign(manifest, key, *, serial=None) -> Manifest        # serial + 1 by default
    verify(data: dict | Manifest, operator_key: str, *, now: int | None = None,
           serials: SerialStore | None = None) -> Manifest
        # FnError: manifest_invalid_signature | manifest_invalid | manifest_expired
        #          | manifest_serial_rollback
    load_file(path) -> dict                      # strict JSON (no floats, no duplicate keys)
    SerialStore(path).check_and_record(device_id, serial)  /  .highest(device_id)
    decide(manifest, capability, args, *, now=None, resolve=True, resolver=None) -> Decision
    Decision(allowed, code, reason, capability, argv, path, requires_approval, timeout_s,
             output_cap_bytes, extra, cwd)  # code: "ok" | "rejected_capability" | "rejected_args"
    lexical_path(path, cwd) -> str           # the bot's resolver (no file system)
    run_cwd(capability, resolver) -> str     # where the program really runs

``verify`` checks the signature over the raw dict first, so any change to a signed
manifest (a byte, a field, a reordering inside a list) fails as
``manifest_invalid_signature`` before anything else is looked at; only an
operator-signed document is then parsed, checked for expiry and for serial rollback.

``decide`` is deny by default: a capability absent from the manifest, an argument
key the capability does not declare, anything not proven to fit, is refused. It
never runs anything; it returns the exact argv to run (argv[0] replaced by the
whitelisted absolute path) so the executor never consults ``PATH`` or a shell.

The argv rule, the same for the bot (lexical) and the device (resolved)::

    options   every option is declared in ``flags`` (a string: no value; an object:
              ``{"name", "arity", "path"}``); the value of an arity-1 option is the
              next word or attached (``-n5``, ``--lines=5``) and is consumed with it;
              an undeclared option, or ``flags: null``, refuses. ``--`` ends options.
    first     with ``subcommands`` set, the first positional must be one of them.
    paths     with ``path_prefixes`` set, every other positional (and every value of a
              ``path`` option) is a path: a relative one needs a declared ``cwd``, and
              resolves against it; after resolution it equals or lies under a
              resolved prefix. The program runs in ``Decision.cwd``: the declared cwd,
              else the first prefix, and in either case inside a prefix.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nacl.signing import SigningKey

from meshagents.errors import FnError
from meshagents.trust.canonical import canonical_bytes, loads_strict
from meshagents.trust.constraints import (
    ExecRefused,
    PathRefused,
    resolve_executable,
    resolve_path,
)
from meshagents.trust.db import connect
from meshagents.trust.models import Capability, Flag, Manifest, parse, parse_exact
from meshagents.trust.signing import TYPE_MANIFEST, public_b64, sign_payload, strip_signature, verify_payload


def load_file(path: Path) -> dict[str, Any]:
    """Read a manifest file with the strict parser; a non-object is refused."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise FnError("manifest_unreadable", f"cannot read {path}: {exc.strerror}") from exc
    try:
        data = loads_strict(raw)
    except FnError as exc:
        raise FnError("manifest_invalid_signature", f"{path}: {exc.message}") from exc
    if not isinstance(data, dict):
        raise FnError("manifest_invalid_signature", f"{path}: not a JSON object")
    return data


#: Where a packaged (root) agent keeps its state, config and audit store (app.md's unit):
#: the signing side refuses any manifest whose paths cover it, whatever else it knows.
AGENT_STATE_DIRS = ("/var/lib/meshagents",)


def _overlaps(granted: str, protected: str) -> bool:
    """``granted`` reaches ``protected``: it is ``/``, the same path, an ancestor, or inside it."""
    return (
        granted == "/"
        or granted == protected
        or protected.startswith(granted.rstrip("/") + "/")
        or granted.startswith(protected.rstrip("/") + "/")
    )


def agent_state_conflicts(
    manifest: Manifest, protected: Any, *, resolver: Resolver | None = None
) -> list[str]:
    """Every ``capability: path covers protected`` of ``manifest``: prefixes, cwd and
    ``visible`` paths that reach the agent's own state, config, audit store or keys.

    ``resolver`` (default lexical) resolves both sides: the device passes the real walk,
    so a prefix that reaches the state through a symlink is caught too.
    """
    resolve = resolver or lexical_path
    wanted: list[str] = []
    for item in protected:
        try:
            wanted.append(resolve(str(item), "/"))
        except PathRefused:
            continue
    found: list[str] = []
    for cap in manifest.capabilities:
        for granted in [*cap.path_prefixes, *([cap.cwd] if cap.cwd else []), *(cap.visible or [])]:
            try:
                real = resolve(granted, "/")
            except PathRefused:
                continue
            for p in wanted:
                if _overlaps(real, p):
                    found.append(f"{cap.name}: {granted} covers {p}")
    return found


def check_agent_state(manifest: Manifest, protected: Any, *, resolver: Resolver | None = None) -> None:
    """FnError ``manifest_covers_agent_state`` when a capability reaches a protected path."""
    found = agent_state_conflicts(manifest, protected, resolver=resolver)
    if found:
        raise FnError(
            "manifest_covers_agent_state",
            "a capability reaches the device agent's own state (keys, config, audit store): "
            + "; ".join(found[:5]),
            conflicts=found,
        )


def sign(
    manifest: Manifest | dict[str, Any],
    key: SigningKey,
    *,
    protected: tuple[str, ...] = AGENT_STATE_DIRS,
) -> Manifest:
    """Sign with the operator key: every field written out, ``operator_key`` set.

    Refused (``manifest_covers_agent_state``) when a capability's paths reach
    ``protected`` (the packaged agent's state dir; callers that know the device's own
    paths add them). The device checks again at load against its real paths.
    """
    body = manifest.model_dump(mode="json") if isinstance(manifest, Manifest) else dict(manifest)
    body["operator_key"] = public_b64(key)
    body.pop("signature", None)
    model = parse(Manifest, body, code="manifest_invalid")
    check_agent_state(model, protected)
    body = strip_signature(model.model_dump(mode="json"))
    body["signature"] = sign_payload(body, key, TYPE_MANIFEST)
    return parse(Manifest, body, code="manifest_invalid")


def resign(
    manifest: Manifest | dict[str, Any],
    key: SigningKey,
    *,
    serial: int | None = None,
) -> Manifest:
    """Re-sign (after a key rotation or an edit) with a serial above the current one."""
    body = manifest.model_dump(mode="json") if isinstance(manifest, Manifest) else dict(manifest)
    current = body.get("serial")
    if serial is None:
        if isinstance(current, bool) or not isinstance(current, int):
            raise FnError("manifest_invalid", "manifest has no integer serial")
        serial = current + 1
    body["serial"] = serial
    return sign(body, key)


class SerialStore:
    """The highest manifest serial seen per device; persistent (SQLite, durable)."""

    def __init__(self, path: Path) -> None:
        self.conn = connect(path)
        self.conn.execute("CREATE TABLE IF NOT EXISTS serials (device_id TEXT PRIMARY KEY, serial INTEGER)")

    def highest(self, device_id: str) -> int | None:
        row = self.conn.execute("SELECT serial FROM serials WHERE device_id=?", (device_id,)).fetchone()
        return None if row is None else int(row[0])

    def check_and_record(self, device_id: str, serial: int) -> None:
        """Refuse a serial lower than one seen before; remember the highest."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            row = self.conn.execute("SELECT serial FROM serials WHERE device_id=?", (device_id,)).fetchone()
            if row is not None and serial < int(row[0]):
                raise FnError(
                    "manifest_serial_rollback",
                    f"manifest serial {serial} for {device_id} is lower than {row[0]} already seen",
                    highest=int(row[0]),
                )
            self.conn.execute(
                "INSERT INTO serials(device_id, serial) VALUES(?, ?) "
                "ON CONFLICT(device_id) DO UPDATE SET serial=max(serial, excluded.serial)",
                (device_id, serial),
            )
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise

    def close(self) -> None:
        self.conn.close()


def verify(
    data: dict[str, Any] | Manifest,
    operator_key: str,
    *,
    now: int | None = None,
    serials: SerialStore | None = None,
) -> Manifest:
    """The manifest, if ``operator_key`` signed exactly this content and it is current."""
    raw = data.model_dump(mode="json") if isinstance(data, Manifest) else data
    if not isinstance(raw, dict):
        raise FnError("manifest_invalid_signature", "a manifest is a JSON object")
    signature = raw.get("signature")
    if not isinstance(signature, str):
        raise FnError("manifest_invalid_signature", "manifest is not signed")
    if raw.get("operator_key") != operator_key:
        raise FnError("manifest_invalid_signature", "manifest was not signed by the trusted operator key")
    try:
        canonical_bytes(strip_signature(raw))
    except FnError as exc:
        raise FnError("manifest_invalid_signature", exc.message) from exc
    if not verify_payload(raw, signature, operator_key, TYPE_MANIFEST):
        raise FnError("manifest_invalid_signature", "signature does not match the manifest's content")
    model = parse_exact(Manifest, raw, code="manifest_invalid")
    if now is not None and now >= model.expires_at:
        raise FnError(
            "manifest_expired", f"manifest expired at {model.expires_at}", expires_at=model.expires_at
        )
    if serials is not None:
        serials.check_and_record(model.device_id, model.serial)
    return model


@dataclass(frozen=True)
class Decision:
    """The outcome of :func:`decide`: allowed with run limits, or a refusal code and reason."""

    allowed: bool
    code: str
    reason: str
    capability: Capability | None = None
    argv: list[str] | None = None
    path: str | None = None
    requires_approval: bool = False
    timeout_s: int = 0
    output_cap_bytes: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    #: the directory the program runs in (resolved; inside a prefix when the capability has any)
    cwd: str = "/"

    @classmethod
    def _allowed(
        cls, cap: Capability, argv: list[str] | None, path: str | None, extra: dict[str, Any], cwd: str
    ) -> Decision:
        """An allowing decision, every field set: built without the frozen dataclass's
        eleven ``object.__setattr__`` calls (~1.5 us of every command); equal, hashed and
        printed like one built by ``Decision(...)`` (the same fields, all given)."""
        d = object.__new__(cls)
        d.__dict__.update({
            "allowed": True, "code": "ok", "reason": "allowed", "capability": cap, "argv": argv,
            "path": path, "requires_approval": cap.requires_approval, "timeout_s": cap.timeout_s,
            "output_cap_bytes": cap.output_cap_bytes, "extra": extra, "cwd": cwd,
        })  # fmt: skip
        return d


def _refuse(code: str, reason: str, cap: Capability | None = None) -> Decision:
    return Decision(False, code, reason, capability=cap)


class _ArgsRefused(ValueError):
    pass


def _check_str(value: Any, cap: Capability, what: str) -> str:
    if not isinstance(value, str):
        raise _ArgsRefused(f"{what} must be a string")
    if "\x00" in value:
        raise _ArgsRefused(f"{what} holds a NUL byte")
    if len(value.encode("utf-8", "surrogatepass")) > cap.max_arg_len:
        raise _ArgsRefused(f"{what} is longer than {cap.max_arg_len} bytes")
    return value


#: How a path argument becomes the absolute path the program would open: ``(path, cwd) ->
#: resolved`` or :class:`PathRefused`. The device passes the kernel-like walk of
#: ``constraints.resolve_path`` (lstat/readlink only); the bot, which cannot see the
#: device's file system, passes :func:`lexical_path`; tests pass a fake file system.
Resolver = Callable[[str, str], str]


def _memo(resolver: Resolver) -> Resolver:
    """``resolver`` remembering its answers for one decision: the cwd, each prefix and each
    argument resolve once (a prefix was walked on disk up to four times per command). A
    refusal is not remembered; it is raised again from a fresh walk."""
    seen: dict[tuple[str, str], str] = {}

    def resolve(path: str, cwd: str = "/") -> str:
        key = (path, "" if path.startswith("/") else cwd)  # an absolute path ignores cwd
        got = seen.get(key)
        if got is None:
            got = seen[key] = resolver(path, cwd)
        return got

    return resolve


def lexical_path(path: str, cwd: str = "/") -> str:
    """``path`` made absolute against ``cwd`` and normalised, without looking at any file."""
    if not path or "\x00" in path:
        raise PathRefused("empty path or NUL byte")
    real = posixpath.normpath(path if path.startswith("/") else posixpath.join(cwd, path))
    if real.startswith("//"):
        real = "/" + real.lstrip("/")
    if any(real == m or real.startswith(m + "/") for m in ("/proc", "/dev/fd")):
        raise PathRefused(f"{path!r} is under /proc or /dev/fd")
    return real


def _inside(real: str, prefixes: list[str], resolver: Resolver) -> bool:
    for prefix in prefixes:
        try:
            real_prefix = resolver(prefix, "/")
        except PathRefused:
            continue
        if real_prefix == "/" or real == real_prefix or real.startswith(real_prefix + "/"):
            return True
    return False


def run_cwd(cap: Capability, resolver: Resolver) -> str:
    """The directory the program runs in, resolved; for a capability with path prefixes
    it lies inside one of them (its declared ``cwd``, else its first prefix).

    Raises _ArgsRefused when a declared cwd is outside the prefixes (the manifest then
    cannot run that capability at all: deny, never run it elsewhere).
    """
    if not cap.path_prefixes:
        return cap.cwd or "/"
    wanted = cap.cwd or cap.path_prefixes[0]
    try:
        real = resolver(wanted, "/")
    except PathRefused as exc:
        raise _ArgsRefused(f"the capability's cwd {wanted}: {exc}") from exc
    if not _inside(real, cap.path_prefixes, resolver):
        raise _ArgsRefused(f"the capability's cwd {wanted} resolves to {real}, outside its path prefixes")
    return real


def _check_pathlike(value: str, cap: Capability, what: str, cwd: str, resolver: Resolver) -> str:
    """THE path rule (bot and device alike): a relative path needs a declared ``cwd``
    (inside a prefix, the directory the program really runs in); the resolved path must
    equal or lie under a resolved prefix."""
    if not value.startswith("/") and cap.cwd is None:
        raise _ArgsRefused(
            f"{what} {value!r} is relative and {cap.name} declares no cwd: give an absolute path"
        )
    try:
        real = resolver(value, cwd)
    except PathRefused as exc:
        raise _ArgsRefused(f"{what}: {exc}") from exc
    if not _inside(real, cap.path_prefixes, resolver):
        raise _ArgsRefused(f"{what} {value!r} resolves to {real}, outside the allowed prefixes")
    return real


def _check_option(items: list[str], i: int, plan: _Plan, cwd: str, resolver: Resolver) -> int:
    """Check the option at ``items[i]``; return how many words it used (1 or 2)."""
    cap, flags = plan.cap, plan.flags
    arg = items[i]
    name, attached = arg, None
    if arg.startswith("--") and "=" in arg:
        name, attached = arg.split("=", 1)
    flag = flags.get(name)
    if flag is None and attached is None and not arg.startswith("--") and len(arg) > 2:
        short = flags.get(arg[:2])  # -n5: a short option with its value attached
        if short is not None and short.arity == 1:
            flag, attached = short, arg[2:]
    if flag is None:
        raise _ArgsRefused(f"option {arg!r} is not declared for {cap.name}")
    if flag.arity == 0:
        if attached is not None:
            raise _ArgsRefused(f"option {flag.name} takes no value")
        return 1
    used = 1
    if attached is None:
        if i + 1 >= len(items):
            raise _ArgsRefused(f"option {flag.name} needs a value")
        attached, used = items[i + 1], 2
    if flag.path:
        if not cap.path_prefixes:
            raise _ArgsRefused(f"option {flag.name} takes a path but {cap.name} has no path prefixes")
        _check_pathlike(attached, cap, f"value of {flag.name}", cwd, resolver)
    return used


def _plain_words(argv: list[Any], max_len: int) -> bool:
    """Every word is a string without NUL within ``max_len`` UTF-8 bytes (the test of
    :func:`_check_str`, without building a label per word; a False answer goes through
    ``_check_str`` for the message). Up to ``max_len // 4`` code points no encoding is
    needed: a code point is at most 4 bytes, a lone surrogate 3."""
    short = max_len // 4
    for a in argv:
        if not isinstance(a, str) or "\x00" in a:
            return False
        if len(a) > short and len(a.encode("utf-8", "surrogatepass")) > max_len:
            return False
    return True


def _check_argv(argv: Any, plan: _Plan, resolve: bool, cwd: str, resolver: Resolver) -> list[str]:
    cap = plan.cap
    if not isinstance(argv, list) or not argv:
        raise _ArgsRefused("argv must be a non-empty list of strings")
    if len(argv) - 1 > cap.max_args:
        raise _ArgsRefused(f"more than {cap.max_args} arguments")
    if _plain_words(argv, cap.max_arg_len):
        items: list[str] = list(argv)
    else:
        items = [_check_str(a, cap, f"argv[{i}]") for i, a in enumerate(argv)]
    try:
        exe = resolve_executable(items[0], plan.executables, plan.search_path, resolve=resolve)
    except ExecRefused as exc:
        raise _ArgsRefused(str(exc)) from exc
    flags = plan.flags
    options_done = False
    positional = 0
    i, count = 1, len(items)
    while i < count:
        arg = items[i]
        if not options_done and arg.startswith("-") and arg != "-":
            if arg == "--":
                options_done = True
                i += 1
                continue
            flag = flags.get(arg)
            if flag is not None and flag.arity == 0:  # a declared plain option (what _check_option says)
                i += 1
                continue
            # Every option is declared; the value of one that takes a value is consumed
            # here, so a word the program reads as a value is never mistaken for a path.
            i += _check_option(items, i, plan, cwd, resolver)
            continue
        if positional == 0 and cap.subcommands is not None:
            if arg not in cap.subcommands:
                raise _ArgsRefused(
                    f"{arg!r} is not an allowed first argument of {cap.name} "
                    f"(one of: {', '.join(cap.subcommands) or 'none'})"
                )
        elif cap.path_prefixes:
            _check_pathlike(arg, cap, f"argv[{i}]", cwd, resolver)
        positional += 1
        i += 1
    if cap.subcommands is not None and positional == 0 and cap.subcommands:
        raise _ArgsRefused(f"{cap.name} needs a first argument, one of: {', '.join(cap.subcommands)}")
    return [exe, *items[1:]]


@dataclass(frozen=True)
class _Plan:
    """What :func:`decide` derives from one capability, once instead of per command (the
    model is frozen): the argument keys it declares, its options by name (a string in
    ``flags`` read as arity 0), its whitelist and search path. Nothing here looks at the
    file system: executables and paths are still found and resolved per request."""

    cap: Capability
    keys: frozenset[str]
    flags: dict[str, Flag]
    executables: tuple[str, ...]
    search_path: tuple[str, ...]
    #: values, limits or texts declared (arguments checked by _check_typed)
    typed: bool

    @classmethod
    def of(cls, cap: Capability) -> _Plan:
        keys = set(cap.values) | set(cap.limits) | set(cap.texts)
        if cap.executables:
            keys.add("argv")
        if cap.path_prefixes:
            keys.add("path")
        flags: dict[str, Flag] = {}
        for item in cap.flags or []:
            flag = item if isinstance(item, Flag) else cap.flag(item)
            if flag is not None:
                flags.setdefault(flag.name, flag)
        typed = bool(cap.values or cap.limits or cap.texts)
        return cls(cap, frozenset(keys), flags, tuple(cap.executables), tuple(cap.search_path), typed)


#: Per manifest object, its capabilities' plans by name: pure functions of the frozen
#: model (the entry keeps the model alive, so its id cannot be reused while it stands).
_PLANS: dict[int, tuple[Manifest, dict[str, _Plan]]] = {}


def _plans(manifest: Manifest) -> dict[str, _Plan]:
    got = _PLANS.get(id(manifest))
    if got is not None and got[0] is manifest:
        return got[1]
    plans: dict[str, _Plan] = {}
    for cap in manifest.capabilities:
        plans.setdefault(cap.name, _Plan.of(cap))  # the first of a name, as Manifest.capability
    if len(_PLANS) >= 64:
        _PLANS.clear()
    _PLANS[id(manifest)] = (manifest, plans)
    return plans


def decide(
    manifest: Manifest,
    capability: str,
    args: Any,
    *,
    now: int | None = None,
    resolve: bool = True,
    resolver: Resolver | None = None,
    _args_canonical: bool = False,
) -> Decision:
    """Allow or refuse ``capability(args)`` under ``manifest``; pure apart from path lookups.

    ``resolve=False`` checks paths lexically only (for a file system this process
    cannot see: the bot's pre-check, a container's); it is weaker and documented as
    such. ``resolver`` replaces the path walk (tests: a fake file system).
    """
    if now is not None and now >= manifest.expires_at:
        return _refuse("rejected_capability", "manifest expired")
    plan = _plans(manifest).get(capability) if isinstance(capability, str) else None
    if plan is None:
        return _refuse("rejected_capability", f"{capability} not in manifest")
    cap = plan.cap
    if not isinstance(args, dict):
        return _refuse("rejected_args", "args must be an object", cap)
    if not _args_canonical:
        try:
            canonical_bytes(args)
        except FnError as exc:
            return _refuse("rejected_args", exc.message, cap)
    allowed_keys = plan.keys
    if not allowed_keys.issuperset(args):
        unknown = sorted(set(args) - allowed_keys)
        return _refuse("rejected_args", f"argument(s) {', '.join(unknown)} not allowed for {cap.name}", cap)
    if resolver is None:
        resolver = resolve_path if resolve else lexical_path
    resolver = _memo(resolver)
    argv: list[str] | None = None
    path: str | None = None
    extra: dict[str, Any] = {}
    cwd = "/"
    try:
        cwd = run_cwd(cap, resolver)
        if cap.executables:
            if "argv" not in args:
                raise _ArgsRefused("argv is required")
            argv = _check_argv(args["argv"], plan, resolve, cwd, resolver)
        if "path" in args:
            path = _check_pathlike(_check_str(args["path"], cap, "path"), cap, "path", cwd, resolver)
        if plan.typed:
            _check_typed(args, cap, extra)
    except _ArgsRefused as exc:
        return _refuse("rejected_args", str(exc), cap)
    return Decision._allowed(cap, argv, path, extra, cwd)


def _check_typed(args: dict[str, Any], cap: Capability, extra: dict[str, Any]) -> None:
    """The ``values``, ``limits`` and ``texts`` arguments, into ``extra``; _ArgsRefused."""
    for key, choices in cap.values.items():
        if key in args:
            value = _check_str(args[key], cap, key)
            if value not in choices:
                raise _ArgsRefused(f"{key}={value!r} is not one of the allowed values")
            extra[key] = value
    for key, limit in cap.limits.items():
        if key in args:
            value = args[key]
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= limit:
                raise _ArgsRefused(f"{key} must be an integer from 0 to {limit}")
            extra[key] = value
    for key, max_bytes in cap.texts.items():
        if key in args:
            value = args[key]
            if not isinstance(value, str):
                raise _ArgsRefused(f"{key} must be a string")
            if len(value.encode("utf-8")) > max_bytes:
                raise _ArgsRefused(f"{key} is over {max_bytes} bytes")
            extra[key] = value

