"""Typed data that crosses a trust boundary (pydantic v2, strict, unknown fields refused).

Public API (all models are frozen; ``model_dump(mode="json")`` gives the signed dict)::

    Capability, Manifest, EnrollmentToken, Envelope, AuditEntry, Checkpoint,
    RotationSignatures, RotationStatement
    parse(model_cls, data, *, code) -> model    # pydantic errors -> FnError(code)

Why strict and ``extra="forbid"``: the signature covers the raw dict. If the model
coerced ``"1"`` into ``1`` or dropped an unknown field, what runs would differ from
what was signed. Every field is written out explicitly when signing (defaults
included), so a later change of a default never changes a signed document's meaning.
Times are integer Unix seconds (audit entries: milliseconds); keys are standard
base64 of the raw 32-byte ed25519 / X25519 public key.
"""

from __future__ import annotations

import functools
import posixpath
import re
from typing import Any, Literal, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationError,
    field_validator,
    model_serializer,
    model_validator,
)

from meshagents.errors import FnError
from meshagents.trust.canonical import b64decode

# Distribution directories first: a file dropped into /usr/local cannot shadow a system binary.
DEFAULT_SEARCH_PATH = ("/usr/bin", "/bin", "/usr/sbin", "/sbin", "/usr/local/bin", "/usr/local/sbin")
NAME_PATTERN = r"^[a-z0-9][a-z0-9_.\-]{0,127}$"
# A device name is also its WireGuard ledger name and its room alias: the ledger holds 63.
DEVICE_NAME_PATTERN = r"^[a-z0-9][a-z0-9_.\-]{0,62}$"
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,127}$"
HEX64 = r"^[0-9a-f]{64}$"

M = TypeVar("M", bound=BaseModel)


class _Model(BaseModel):
    # defer_build: a model's validator is built on its first use, not at import (11 models, ~0.3 s
    # of a cold start; `meshagents enroll` uses three of them: issue 19)
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, defer_build=True)


def _key32(value: str) -> str:
    try:
        b64decode(value, size=32, what="key")
    except FnError as exc:
        raise ValueError(exc.message) from exc
    return value


def _abs_normal(value: str) -> str:
    # A whitelist entry or prefix must be written the one way: absolute, no `.`/`..`/`//`.
    if not value.startswith("/") or posixpath.normpath(value) != value or "\x00" in value:
        raise ValueError(f"{value!r} is not an absolute, normalised path")
    return value


FLAG_PATTERN = r"^--?[A-Za-z0-9][A-Za-z0-9_\-]*$"


class Flag(_Model):
    """An argv option that takes a value (``arity`` 1) or none (0).

    The value is the next word (``-n 5``) or attached (``-n5``, ``--lines=5``). With
    ``path: true`` the value is a path and obeys the capability's path rule like a
    positional argument does. A plain string in ``flags`` is a Flag with arity 0.
    """

    name: str = Field(pattern=FLAG_PATTERN, description="the option, e.g. -n or --lines")
    arity: Literal[0, 1] = Field(default=1, description="how many values follow it (0 or 1)")
    path: bool = Field(default=False, description="the value is a path under the capability's prefixes")


#: Fields added after manifests were first signed: left out of the signed form while they
#: hold their default, so every manifest signed before them keeps its bytes (and signature).
_ADDITIVE_DEFAULTS: dict[str, Any] = {"subcommands": None, "visible": None, "attachment_cap_bytes": None}



@functools.lru_cache(maxsize=512)
def _plain_flag(name: str) -> Flag:
    # A string in ``flags`` read as a Flag: built once per name (frozen, so shared safely)
    # instead of a pydantic validation per option per command.
    return Flag(name=name, arity=0)

class Capability(_Model):
    """One thing a device may do, and the constraints on its arguments.

    ``args`` of a request are a JSON object. Keys it may hold:
    ``argv`` (list of strings) when ``executables`` is set; ``path`` (string) when
    ``path_prefixes`` is set; the keys of ``values`` (one of the listed strings);
    the keys of ``limits`` (an integer 0..limit); the keys of ``texts`` (any string up
    to that many UTF-8 bytes, e.g. a file's content). Anything else is refused.
    """

    name: str = Field(pattern=NAME_PATTERN, description="capability name, e.g. shell.exec.ls")
    description: str = ""
    executables: list[str] = Field(default_factory=list, description="absolute paths argv[0] may be")
    search_path: list[str] = Field(
        default_factory=lambda: list(DEFAULT_SEARCH_PATH),
        description="directories a bare argv[0] is looked up in (never the caller's PATH)",
    )
    path_prefixes: list[str] = Field(
        default_factory=list, description="path arguments must resolve (realpath) under one of these"
    )
    cwd: str | None = Field(default=None, description="working directory; relative paths resolve from it")
    flags: list[str | Flag] | None = Field(
        default=None,
        description=(
            "allowed argv options: a string is an option without a value, an object names its "
            "arity; null = no option at all (an undeclared option is refused)"
        ),
    )
    subcommands: list[str] | None = Field(
        default=None,
        description="when set, the first positional argument must be one of these (e.g. systemctl status)",
    )
    visible: list[str] | None = Field(
        default=None,
        description=(
            "extra paths the sandboxed program sees read-only besides the system's programs and "
            "its prefixes (e.g. /run/systemd for systemctl); none by default"
        ),
    )
    values: dict[str, list[str]] = Field(default_factory=dict, description="enumerated string arguments")
    limits: dict[str, int] = Field(default_factory=dict, description="integer arguments and their maxima")
    texts: dict[str, int] = Field(
        default_factory=dict,
        description="free-form string arguments (e.g. fs.write content) and their maximum UTF-8 size",
    )
    max_args: int = Field(default=32, ge=0, le=4096)
    max_arg_len: int = Field(default=4096, ge=1, le=1 << 20)
    timeout_s: int = Field(default=30, ge=1, le=86400)
    output_cap_bytes: int = Field(default=65536, ge=0, le=1 << 30)
    attachment_cap_bytes: int | None = Field(  # additive: see _ADDITIVE_DEFAULTS
        default=None,
        ge=0,
        le=1 << 30,
        description="output or file sent as an encrypted attachment up to this size; "
        "absent: output_cap_bytes; 0: never an attachment",
    )
    requires_approval: bool = False

    @field_validator("executables", "search_path", "path_prefixes", "visible")
    @classmethod
    def _paths(cls, value: list[str] | None) -> list[str] | None:
        for item in value or []:
            _abs_normal(item)
        return value

    @field_validator("cwd")
    @classmethod
    def _cwd(cls, value: str | None) -> str | None:
        return None if value is None else _abs_normal(value)

    @field_validator("flags")
    @classmethod
    def _flags(cls, value: list[str | Flag] | None) -> list[str | Flag] | None:
        names: list[str] = []
        for item in value or []:
            name = item.name if isinstance(item, Flag) else item
            if not re.fullmatch(FLAG_PATTERN, name):
                raise ValueError(f"{name!r} is not an option name (-x or --word)")
            names.append(name)
        if len(names) != len(set(names)):
            raise ValueError("an option is declared twice in flags")
        return value

    @model_serializer(mode="wrap")
    def _additive(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        out: dict[str, Any] = handler(self)
        for key, default in _ADDITIVE_DEFAULTS.items():
            if key in out and out[key] == default:
                del out[key]
        return out

    def flag(self, name: str) -> Flag | None:
        """The declared option ``name`` (strings read as arity 0), or None."""
        for item in self.flags or []:
            if isinstance(item, Flag):
                if item.name == name:
                    return item
            elif item == name:
                return _plain_flag(item)
        return None


class Manifest(_Model):
    """What one device may do, signed by the operator key."""

    type: Literal["meshagents.manifest.v1"] = "meshagents.manifest.v1"
    device_id: str = Field(pattern=ID_PATTERN)
    device_name: str = Field(pattern=DEVICE_NAME_PATTERN)
    device_key: str = Field(description="device ed25519 public key (signs audit checkpoints)")
    wg_public_key: str = Field(description="device WireGuard X25519 public key")
    mesh_address: str
    matrix_user: str
    approvers: list[str] = Field(description="operator Matrix ids whose approval counts")
    controllers: list[str] = Field(description="controller ed25519 public keys allowed to sign envelopes")
    capabilities: list[Capability]
    #: Additive (older signed manifests lack it): the bot Matrix users whose verified
    #: device may post approval requests the device will honour.
    bot_users: list[str] = Field(
        default_factory=list, description="bot Matrix ids that post approval requests"
    )
    serial: int = Field(ge=1, description="only grows; a verifier refuses a lower one")
    issued_at: int
    expires_at: int
    operator_key: str = Field(description="operator ed25519 public key that signed (informational)")
    signature: str | None = None

    @field_validator("device_key", "wg_public_key", "operator_key")
    @classmethod
    def _k(cls, value: str) -> str:
        return _key32(value)

    @field_validator("controllers")
    @classmethod
    def _ctl(cls, value: list[str]) -> list[str]:
        for item in value:
            _key32(item)
        return value

    @model_serializer(mode="wrap")
    def _omit_empty_additive(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # An empty bot_users is written as no field at all, so a manifest signed before
        # the field existed dumps to the exact bytes that were signed.
        out: dict[str, Any] = handler(self)
        if not out.get("bot_users"):
            out.pop("bot_users", None)
        return out

    @model_validator(mode="after")
    def _unique_caps(self) -> Manifest:
        names = [c.name for c in self.capabilities]
        if len(names) != len(set(names)):
            raise ValueError("capability names must be unique")
        if self.expires_at <= self.issued_at:
            raise ValueError("expires_at must be after issued_at")
        return self

    def capability(self, name: str) -> Capability | None:
        for cap in self.capabilities:
            if cap.name == name:
                return cap
        return None


class EnrollmentToken(_Model):
    """A one-use ticket to join the mesh, signed by the operator key."""

    type: Literal["meshagents.enrollment_token.v1"] = "meshagents.enrollment_token.v1"
    token_id: str = Field(pattern=r"^[A-Za-z0-9_\-]{16,64}$")
    device_name: str = Field(pattern=DEVICE_NAME_PATTERN)
    hub_endpoint: str
    hub_public_key: str
    profile: str = Field(pattern=NAME_PATTERN)
    profile_sha256: str | None = Field(
        default=None,
        pattern=HEX64,
        description="sha256 of the canonical {name, capabilities} of the profile (the device checks)",
    )
    controllers: list[str] | None = Field(
        default=None, description="controller public keys the device's manifest may name (null: not pinned)"
    )
    bundle_sha256: str | None = Field(
        default=None,
        pattern=HEX64,
        description="sha256 of the install bundle manifest that install.sh must get (the hub's /install)",
    )
    issued_at: int
    expires_at: int
    operator_key: str
    signature: str | None = None

    @field_validator("controllers")
    @classmethod
    def _ctl(cls, value: list[str] | None) -> list[str] | None:
        for item in value or []:
            _key32(item)
        return value


class Envelope(_Model):
    """One request to a device, signed by a controller key listed in its manifest."""

    type: Literal["meshagents.envelope.v1"] = "meshagents.envelope.v1"
    request_id: str = Field(pattern=ID_PATTERN)
    device_id: str = Field(pattern=ID_PATTERN)
    capability: str = Field(pattern=NAME_PATTERN)
    args: dict[str, Any]
    nonce: str = Field(pattern=r"^[A-Za-z0-9_\-]{16,128}$")
    issued_at: int
    expires_at: int
    approval: str | None = Field(default=None, description="Matrix event id of the approval")
    controller: str = Field(description="controller ed25519 public key (base64)")
    signature: str | None = None


class AuditEntry(_Model):
    """One row of a device's hash chain. ``hash`` = sha256(canonical(entry without hash))."""

    seq: int = Field(ge=1)
    kind: Literal["intent", "outcome", "event"]
    ts_ms: int
    request_id: str
    capability: str
    args_digest: str
    status: str
    approval: str | None = None
    detail: str = ""
    prev_hash: str = Field(pattern=HEX64)
    hash: str = Field(pattern=HEX64)


class Checkpoint(_Model):
    """The chain head at ``seq``, signed by the device key."""

    type: Literal["meshagents.audit_checkpoint.v1"] = "meshagents.audit_checkpoint.v1"
    device_id: str
    seq: int = Field(ge=0)
    head_hash: str = Field(pattern=HEX64)
    created_at: int
    device_key: str
    signature: str | None = None


class RotationSignatures(_Model):
    old: str
    new: str


class RotationStatement(_Model):
    """Moves trust from ``old_key`` to ``new_key``; signed by both."""

    type: Literal["meshagents.rotation.v1"] = "meshagents.rotation.v1"
    old_key: str
    new_key: str
    issued_at: int
    reason: str
    signatures: RotationSignatures | None = None

    @field_validator("old_key", "new_key")
    @classmethod
    def _k(cls, value: str) -> str:
        return _key32(value)


#: Per model, fields a signed document may omit because they were added after it.
ADDITIVE_FIELDS: dict[str, frozenset[str]] = {
    "Manifest": frozenset({"bot_users"}),
    # a token signed before install bundles existed: no bundle for install.sh (it refuses)
    "EnrollmentToken": frozenset({"bundle_sha256"}),
}


def parse_exact(model: type[M], data: dict[str, Any], *, code: str, deep: bool = True) -> M:
    """Like :func:`parse`, and refuse a document the model would complete with defaults.

    Used after a signature check: what runs must be exactly what was signed, never
    the signed text plus whatever today's defaults are. ``deep=False`` checks only the
    top-level fields (enough for models without nested models, and cheaper).
    """
    out = parse(model, data, code=code)
    # Fields added later (ADDITIVE_FIELDS) may be absent from a document signed before
    # them; absent, their default is what it meant. Every other field must be present.
    additive = ADDITIVE_FIELDS.get(model.__name__, frozenset()) - set(data)
    # Unknown fields are already refused, so equal counts mean every field is present.
    complete = len(data) + len(additive) == len(model.model_fields)
    if complete and deep:
        complete = out.model_dump(mode="json", exclude=set(additive)) == data
    if not complete:
        missing = sorted(set(model.model_fields) - set(data)) or "a nested default"
        raise FnError(code, f"{model.__name__} is not in complete signed form (missing: {missing})")
    return out


def parse(model: type[M], data: Any, *, code: str) -> M:
    """Validate ``data`` into ``model``; any problem becomes ``FnError(code)``."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
        where = ".".join(str(p) for p in errors[0]["loc"]) if errors else ""
        msg = errors[0]["msg"] if errors else str(exc)
        raise FnError(code, f"{model.__name__} invalid at {where or '$'}: {msg}") from exc
    except FnError as exc:
        raise FnError(code, f"{model.__name__} invalid: {exc.message}") from exc
