"""What you see is what you sign: a manifest compared with its profile and its predecessor (pure).

Public API::

    profile_content(name, capabilities) -> dict       # {"name", "capabilities": [normalised]}
    profile_sha256(content) -> str                     # sha256 hex of canonical JSON
    capability_beyond(cap, allowed) -> list[str]       # fields where cap is wider than allowed
    within_profile(manifest_caps, profile_caps) -> list[Difference]   # only the wider ones
    Expected(controllers, approvers, operator_key)     # the operator's own configuration
    review(manifest, profile, previous=None, expected=None, allow=()) -> Review
    check(review)                                      # FnError manifest_beyond_profile | _config_mismatch
    note_beyond_token(review, token_profile) -> Review # a re-issue wider than the enrollment token
    render(review) -> str                              # the fixed-width text table

The same comparison runs in three places: the operator's machine before signing
(``capability_manifest_sign --show``, ``pipelines/sign_pending_manifests``), the
re-issue function, and the device at enrollment (``within_profile`` against the
profile its token pinned by hash). Nothing here reads a file or a key.

"Wider" is judged per field, so a field this module does not know (a capability
model that gained one) is never silently narrower: it must be equal to the profile's,
else it counts as beyond the profile. Kinds of a :class:`Difference`:

- ``beyond_profile`` — more than the profile grants (refused unless ``--allow NAME``);
- ``narrower`` — less than the profile grants (shown, never refused);
- ``omitted`` — a profile capability the manifest leaves out (shown);
- ``since_previous`` — changed against the device's previous manifest (shown);
- ``beyond_token`` — a re-issue that grants more than the enrollment token's profile
  (``note_beyond_token``; shown: a re-issue is the deliberate way to widen);
- ``config`` — controllers, approvers or operator key differ from the operator's own
  configuration (always refused; ``--allow`` does not lift it).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from meshagents.errors import FnError
from meshagents.trust.canonical import canonical_bytes
from meshagents.trust.models import Capability, parse

# Integer fields where a smaller number grants less.
_MAXIMA = ("max_args", "max_arg_len", "timeout_s", "output_cap_bytes")
# Lists where a subset grants less.
_SUBSETS = ("executables", "search_path")
# Integer maps (argument -> maximum) where fewer keys and smaller maxima grant less.
_MAPS = ("limits", "texts")
# Text that grants nothing.
_NEUTRAL = ("name", "description")
_KNOWN = (*_MAXIMA, *_SUBSETS, *_MAPS, *_NEUTRAL, "path_prefixes", "flags", "values", "requires_approval")

MARK_BEYOND = "!"
MARK_NARROWER = "~"
MARK_PREVIOUS = "*"
MARK_TOKEN = "^"  # noqa: S105 - a table mark, not a secret


def profile_content(name: str, capabilities: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The hashed form of a profile: its name and each capability with every field written out."""
    caps = [parse(Capability, dict(c), code="profile_invalid").model_dump(mode="json") for c in capabilities]
    return {"name": name, "capabilities": caps}


def profile_sha256(content: Mapping[str, Any]) -> str:
    """What an enrollment token pins: sha256 of the canonical JSON of ``{name, capabilities}``."""
    return hashlib.sha256(
        canonical_bytes({"name": content["name"], "capabilities": content["capabilities"]})
    ).hexdigest()


def _under(path: str, prefixes: Iterable[str]) -> bool:
    return any(p == "/" or path == p or path.startswith(p.rstrip("/") + "/") for p in prefixes)


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ",".join(_fmt(v) for v in value) or "-"
    if isinstance(value, dict):
        return ",".join(f"{k}={_fmt(v)}" for k, v in sorted(value.items())) or "-"
    return str(value)


def _flags(value: Any) -> str:
    return "simple" if value is None else _fmt(value)


def capability_beyond(cap: Mapping[str, Any], allowed: Mapping[str, Any]) -> list[str]:
    """Why ``cap`` grants more than ``allowed`` (same name), one phrase per wider field."""
    out: list[str] = []
    for key in _MAXIMA:
        a, b = cap.get(key), allowed.get(key)
        if a != b and (not isinstance(a, int) or not isinstance(b, int) or a > b):
            out.append(f"{key} {_fmt(a)} > {_fmt(b)}")
    for key in _SUBSETS:
        extra = sorted(set(cap.get(key) or []) - set(allowed.get(key) or []))
        if extra:
            out.append(f"{key} adds {_fmt(extra)}")
    for key in _MAPS:
        mine, theirs = cap.get(key) or {}, allowed.get(key) or {}
        for arg in sorted(mine):
            if arg not in theirs:
                out.append(f"{key}.{arg} not in the profile")
            elif mine[arg] > theirs[arg]:
                out.append(f"{key}.{arg} {mine[arg]} > {theirs[arg]}")
    prefixes = list(allowed.get("path_prefixes") or [])
    wide = [p for p in cap.get("path_prefixes") or [] if not _under(p, prefixes)]
    if wide:
        out.append(f"path_prefixes {_fmt(wide)} not under {_fmt(prefixes)}")
    if allowed.get("path_prefixes") and not cap.get("path_prefixes"):
        out.append("path_prefixes dropped (path arguments no longer constrained)")
    flags, allowed_flags = cap.get("flags"), allowed.get("flags")
    # null means "simple flags only": a list is wider unless the profile's list holds it
    if flags != allowed_flags and (allowed_flags is None or flags is None or set(flags) - set(allowed_flags)):
        out.append(f"flags {_flags(flags)} beyond {_flags(allowed_flags)}")
    values, allowed_values = cap.get("values") or {}, allowed.get("values") or {}
    for arg in sorted(values):
        extra = sorted(set(values[arg]) - set(allowed_values.get(arg, [])))
        if arg not in allowed_values or extra:
            out.append(f"values.{arg} adds {_fmt(extra or values[arg])}")
    if allowed.get("requires_approval") and not cap.get("requires_approval"):
        out.append("requires_approval lifted")
    # Fields unknown here (cwd, and whatever the capability model gains): equal or beyond.
    for key in sorted((set(cap) | set(allowed)) - set(_KNOWN)):
        if cap.get(key) != allowed.get(key):
            out.append(f"{key} {_fmt(cap.get(key))} differs from {_fmt(allowed.get(key))}")
    return out


def _narrower(cap: Mapping[str, Any], allowed: Mapping[str, Any]) -> list[str]:
    """Fields that differ from the profile without granting more (the rest of the difference)."""
    out = []
    for key in sorted(set(cap) | set(allowed)):
        if key in _NEUTRAL or cap.get(key) == allowed.get(key):
            continue
        out.append(f"{key} {_fmt(cap.get(key))} (profile {_fmt(allowed.get(key))})")
    return out


@dataclass(frozen=True)
class Difference:
    kind: str  # beyond_profile | narrower | omitted | since_previous | beyond_token | config
    subject: str  # capability name, or controllers / approvers / operator_key / serial
    detail: str
    allowed: bool = False  # a beyond_profile difference the operator allowed by name

    @property
    def refused(self) -> bool:
        return (self.kind == "beyond_profile" and not self.allowed) or self.kind == "config"

    def line(self) -> str:
        mark = {
            "beyond_profile": MARK_BEYOND,
            "narrower": MARK_NARROWER,
            "since_previous": MARK_PREVIOUS,
            "beyond_token": MARK_TOKEN,
        }
        tag = "allowed" if self.allowed else ("REFUSED" if self.refused else "note")
        sign = mark.get(self.kind, "?" if self.kind == "config" else "-")
        return f"{sign} [{tag}] {self.subject}: {self.detail}"

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "subject": self.subject,
            "detail": self.detail,
            "allowed": self.allowed,
            "refused": self.refused,
        }


def _by_name(caps: Iterable[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    return {str(c.get("name")): c for c in caps}


def within_profile(
    manifest_caps: Iterable[Mapping[str, Any]], profile_caps: Iterable[Mapping[str, Any]]
) -> list[Difference]:
    """Every way the manifest's capabilities grant more than the profile's (empty: within)."""
    allowed = _by_name(profile_caps)
    out = []
    for cap in manifest_caps:
        name = str(cap.get("name"))
        if name not in allowed:
            out.append(Difference("beyond_profile", name, "not in the profile"))
            continue
        out.extend(Difference("beyond_profile", name, why) for why in capability_beyond(cap, allowed[name]))
    return out


@dataclass(frozen=True)
class Expected:
    """What the operator's own configuration says a manifest must name (never the hub's word)."""

    controllers: tuple[str, ...] | None = None
    approvers: tuple[str, ...] | None = None
    operator_key: str | None = None


@dataclass(frozen=True)
class Review:
    device_id: str
    serial: Any
    previous_serial: Any
    profile_name: str
    profile_sha256: str
    manifest: Mapping[str, Any]
    profile: Mapping[str, Any]
    previous: Mapping[str, Any] | None
    differences: list[Difference] = field(default_factory=list)

    @property
    def refused(self) -> list[Difference]:
        return [d for d in self.differences if d.refused]

    @property
    def ok(self) -> bool:
        return not self.refused

    def marks(self, name: str) -> str:
        kinds = {d.kind for d in self.differences if d.subject == name}
        return "".join(
            m
            for k, m in (
                ("beyond_profile", MARK_BEYOND),
                ("narrower", MARK_NARROWER),
                ("since_previous", MARK_PREVIOUS),
                ("beyond_token", MARK_TOKEN),
            )
            if k in kinds
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "device_id": self.device_id,
            "serial": self.serial,
            "previous_serial": self.previous_serial,
            "profile": self.profile_name,
            "profile_sha256": self.profile_sha256,
            "ok": self.ok,
            "differences": [d.to_json() for d in self.differences],
            "refused": [d.line() for d in self.refused],
            "table": render(self),
        }


def _set_diff(subject: str, have: Sequence[str], want: Sequence[str]) -> list[Difference]:
    extra, missing = sorted(set(have) - set(want)), sorted(set(want) - set(have))
    if not extra and not missing:
        return []
    parts = [f"not in your configuration: {_fmt(extra)}"] if extra else []
    parts += [f"missing: {_fmt(missing)}"] if missing else []
    return [Difference("config", subject, "; ".join(parts))]


def review(
    manifest: Mapping[str, Any],
    profile: Mapping[str, Any],
    previous: Mapping[str, Any] | None = None,
    expected: Expected | None = None,
    allow: Iterable[str] = (),
) -> Review:
    """Compare ``manifest`` with ``profile`` (``profile_content`` form) and ``previous``."""
    allowed_names = set(allow)
    caps = list(manifest.get("capabilities") or [])
    prof = _by_name(profile.get("capabilities") or [])
    diffs: list[Difference] = []
    for cap in caps:
        name = str(cap.get("name"))
        if name not in prof:
            diffs.append(Difference("beyond_profile", name, "not in the profile", name in allowed_names))
            continue
        wider = capability_beyond(cap, prof[name])
        diffs += [Difference("beyond_profile", name, why, name in allowed_names) for why in wider]
        if not wider:
            diffs += [Difference("narrower", name, why) for why in _narrower(cap, prof[name])]
    names = {str(c.get("name")) for c in caps}
    diffs += [Difference("omitted", n, "in the profile, not in the manifest") for n in prof if n not in names]
    if previous is not None:
        before = _by_name(previous.get("capabilities") or [])
        for cap in caps:
            name = str(cap.get("name"))
            if name not in before:
                diffs.append(Difference("since_previous", name, "new since the previous manifest"))
            elif dict(cap) != dict(before[name]):
                changed = sorted(k for k in set(cap) | set(before[name]) if cap.get(k) != before[name].get(k))
                diffs.append(Difference("since_previous", name, f"changed: {', '.join(changed)}"))
        diffs += [
            Difference("since_previous", n, "removed since the previous manifest")
            for n in before
            if n not in names
        ]
        for key in ("device_key", "wg_public_key", "mesh_address", "device_id", "matrix_user"):
            if manifest.get(key) != previous.get(key):
                diffs.append(
                    Difference("config", key, f"{_fmt(manifest.get(key))} was {_fmt(previous.get(key))}")
                )
        serial, old = manifest.get("serial"), previous.get("serial")
        if not isinstance(serial, int) or not isinstance(old, int) or serial <= old:
            diffs.append(Difference("config", "serial", f"{_fmt(serial)} does not grow past {_fmt(old)}"))
    if expected is not None:
        if expected.controllers is not None:
            diffs += _set_diff("controllers", list(manifest.get("controllers") or []), expected.controllers)
        if expected.approvers is not None:
            diffs += _set_diff("approvers", list(manifest.get("approvers") or []), expected.approvers)
        if expected.operator_key is not None and manifest.get("operator_key") != expected.operator_key:
            diffs.append(
                Difference(
                    "config",
                    "operator_key",
                    f"{_fmt(manifest.get('operator_key'))} is not your key {expected.operator_key}",
                )
            )
    return Review(
        device_id=str(manifest.get("device_id")),
        serial=manifest.get("serial"),
        previous_serial=None if previous is None else previous.get("serial"),
        profile_name=str(profile.get("name")),
        profile_sha256=profile_sha256(profile) if "capabilities" in profile and "name" in profile else "",
        manifest=manifest,
        profile=profile,
        previous=previous,
        differences=diffs,
    )


def note_beyond_token(rv: Review, token_profile: Mapping[str, Any]) -> Review:
    """Add, for a re-issue, where the manifest grants more than the device's enrollment token did."""
    wider = within_profile(rv.manifest.get("capabilities") or [], token_profile.get("capabilities") or [])
    name = token_profile.get("name")
    extra = [Difference("beyond_token", d.subject, f"{d.detail} (token profile {name})") for d in wider]
    return replace(rv, differences=[*rv.differences, *extra])


def check(rv: Review) -> None:
    """Raise the stable refusal for a review that is not ok, every refused difference named."""
    if rv.ok:
        return
    lines = "; ".join(d.line() for d in rv.refused)
    config = any(d.kind == "config" for d in rv.refused)
    raise FnError(
        "manifest_config_mismatch" if config else "manifest_beyond_profile",
        f"{rv.device_id}: not signed: {lines}",
        device_id=rv.device_id,
        differences=[d.to_json() for d in rv.refused],
    )


# ---------------------------------------------------------------- rendering
COLUMNS = ("", "capability", "source", "programs", "flags", "path prefixes", "limits", "approval", "other")
_OTHER_SKIP = {
    "name",
    "description",
    "executables",
    "flags",
    "path_prefixes",
    "limits",
    "texts",
    "values",
    "requires_approval",
    "search_path",
}


def _cells(cap: Mapping[str, Any] | None) -> list[str]:
    if cap is None:
        return ["(none)", "", "", "", "", ""]
    flags = cap.get("flags")
    limits = {**(cap.get("limits") or {}), **{f"text.{k}": v for k, v in (cap.get("texts") or {}).items()}}
    limits.update({f"value.{k}": "|".join(v) for k, v in (cap.get("values") or {}).items()})
    # every other field, generically: timeouts, caps, and fields this module has never heard of
    other = {k: v for k, v in cap.items() if k not in _OTHER_SKIP}
    return [
        _fmt(cap.get("executables")),
        "simple" if flags is None else _fmt(flags),
        _fmt(cap.get("path_prefixes")),
        _fmt(limits),
        "required" if cap.get("requires_approval") else "no",
        " ".join(f"{k}={_fmt(v)}" for k, v in sorted(other.items())),
    ]


def render(rv: Review) -> str:
    """The review as text: a row per capability (manifest), and profile/previous rows where they differ."""
    rows: list[list[str]] = [list(COLUMNS)]
    prof = _by_name(rv.profile.get("capabilities") or [])
    before = _by_name(rv.previous.get("capabilities") or []) if rv.previous is not None else None
    caps = _by_name(rv.manifest.get("capabilities") or [])
    order = (
        list(caps)
        + [n for n in prof if n not in caps]
        + [n for n in (before or {}) if n not in caps and n not in prof]
    )
    for name in order:
        mine = caps.get(name)
        rows.append([rv.marks(name), name, "manifest", *_cells(mine)])
        if prof.get(name) != mine:
            rows.append(["", "", "profile", *_cells(prof.get(name))])
        if before is not None and before.get(name) != mine:
            rows.append(["", "", "previous", *_cells(before.get(name))])
    widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS))]
    lines = [
        f"device {rv.device_id}  serial {_fmt(rv.serial)}"
        + (f" (previous {_fmt(rv.previous_serial)})" if rv.previous is not None else " (first manifest)")
        + f"  profile {rv.profile_name} sha256:{rv.profile_sha256[:16]}",
    ]
    for i, row in enumerate(rows):
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    lines.append(f"controllers {_fmt(rv.manifest.get('controllers'))}")
    lines.append(f"approvers   {_fmt(rv.manifest.get('approvers'))}")
    lines.append(f"operator    {_fmt(rv.manifest.get('operator_key'))}")
    lines.append(f"expires_at  {_fmt(rv.manifest.get('expires_at'))}")
    lines.append(
        f"marks: {MARK_BEYOND} beyond the profile  {MARK_NARROWER} narrower than the profile  "
        f"{MARK_PREVIOUS} changed since the previous manifest  "
        f"{MARK_TOKEN} beyond the enrollment token's profile"
    )
    if rv.differences:
        lines.append("differences:")
        lines += [f"  {d.line()}" for d in rv.differences]
    else:
        lines.append("differences: none (exactly the profile)")
    lines.append("verdict: " + ("ok to sign" if rv.ok else f"REFUSED ({len(rv.refused)} difference(s))"))
    return "\n".join(lines) + "\n"


__all__ = [
    "Difference",
    "Expected",
    "Review",
    "capability_beyond",
    "profile_content",
    "profile_sha256",
    "render",
    "review",
    "within_profile",
]


def check_against_token(
    manifest: Mapping[str, Any],
    *,
    profile_sha256_pin: str | None,
    controllers_pin: Sequence[str] | None,
    profile: Any,
) -> None:
    """The device's check at enrollment: the manifest stays within what its token promised.

    ``profile`` is the hub's answer (``{"name", "capabilities"}``); it counts only if it
    hashes to the token's pin. Raises ``FnError``: ``profile_mismatch`` (missing, or not
    the pinned content) or ``manifest_beyond_token`` (a capability beyond the profile, or a
    controller the token does not list) — even when the manifest is validly signed.
    """
    if controllers_pin is not None:
        foreign = sorted(set(manifest.get("controllers") or []) - set(controllers_pin))
        if foreign:
            raise FnError(
                "manifest_beyond_token",
                f"the manifest names controllers the token does not: {_fmt(foreign)}",
                subject="controllers",
            )
    if profile_sha256_pin is None:
        return
    if not isinstance(profile, dict) or not isinstance(profile.get("capabilities"), list):
        raise FnError("profile_mismatch", "the token pins a profile; the hub's answer carries none")
    try:
        digest = profile_sha256(profile)
    except Exception as exc:  # not canonical JSON (floats, odd types): not the pinned content
        raise FnError("profile_mismatch", f"the hub's profile cannot be hashed: {exc}") from exc
    if digest != profile_sha256_pin or profile.get("name") is None:
        raise FnError(
            "profile_mismatch",
            f"the hub's profile hashes to {digest[:16]}…, the token pins {profile_sha256_pin[:16]}…",
        )
    wider = within_profile(manifest.get("capabilities") or [], profile["capabilities"])
    if wider:
        raise FnError(
            "manifest_beyond_token",
            "the manifest grants more than the token's profile: "
            + "; ".join(f"{d.subject}: {d.detail}" for d in wider),
            differences=[d.to_json() for d in wider],
        )
