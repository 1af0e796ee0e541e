"""Canonical JSON: the exact bytes every signature and every hash in the trust core covers.

Public API::

    canonical_bytes(obj) -> bytes          # raises FnError("canonical_invalid")
    loads_strict(raw, *, require_canonical=False) -> Any   # raises FnError("canonical_invalid")
    b64encode(raw) -> str / b64decode(text, *, size=None) -> bytes   # strict, round-trip checked
    b64url_encode(raw) -> str / b64url_decode(text) -> bytes         # unpadded URL-safe, strict
    sha256_hex(raw) -> str

The form: keys sorted by code point, no insignificant whitespace (``,`` and ``:``
separators), UTF-8 without ``\\u`` escapes for non-ASCII, JSON's own short escapes
for ``"``, ``\\`` and control characters. Values may be objects with string keys,
arrays, strings, booleans, null and integers within the IEEE-754 safe range
(|n| <= 2**53 - 1, so that every JSON implementation reads the same number).

Refused, with ``canonical_invalid``:

* floats, NaN and infinities (two encoders rarely agree on a float's text);
* integers beyond 2**53 - 1;
* strings (keys or values) that are not in Unicode NFC, or that hold lone surrogates.

Why refuse non-NFC rather than normalise: a signature covers exact bytes. If the
verifier normalised, two different byte strings would verify under one signature,
and what the signer saw would not be what the executor runs. Refusing makes every
normalisation trick (NFD filenames, combining marks) fail on both sides, loudly.

``loads_strict`` is the one parser for anything that will be verified: it also
refuses duplicate keys (two parsers may keep different copies) and, with
``require_canonical=True``, any text that is not byte-for-byte the canonical form
of what it parses to (so a reordered or re-escaped payload is refused, not "fixed").
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import json.encoder
import unicodedata
from typing import Any

from meshagents.errors import FnError

MAX_SAFE_INT = 2**53 - 1

_ENCODER = json.JSONEncoder(
    ensure_ascii=False, allow_nan=False, sort_keys=True, separators=(",", ":"), check_circular=True
)
_is_normalized = unicodedata.is_normalized


def _not_json(obj: Any) -> Any:
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


#: The C encoder ``_ENCODER.encode`` builds anew on every call, built once (same options:
#: sorted keys, compact separators, UTF-8 text, no NaN). Without circular-reference
#: markers: a value reaches it only after ``_fast_ok``/``_check`` walked the whole tree,
#: and a cycle makes that walk raise first.
_c_make_encoder: Any = getattr(json.encoder, "c_make_encoder", None)
_C_ENCODE: Any = (
    None
    if _c_make_encoder is None
    else _c_make_encoder(None, _not_json, json.encoder.encode_basestring, None, ":", ",", True, False, False)
)


def _invalid(message: str) -> FnError:
    return FnError("canonical_invalid", message)


def _fast_ok(obj: Any) -> bool:
    """True when ``obj`` is certainly valid; a False answer is re-checked slowly for a message.

    Exact type checks (not isinstance) keep bool/int subclasses and str subclasses
    on the slow path, and ASCII strings skip the NFC test (ASCII is always NFC).
    Scalars inside a container are judged inline (one call per container, not per
    value: this runs on every envelope a device verifies).
    """
    t = type(obj)
    values: Any
    if t is dict:
        for key in obj:
            if type(key) is not str or not (key.isascii() or _is_normalized("NFC", key)):
                return False
        values = obj.values()
    elif t is list or t is tuple:
        values = obj
    elif t is str:
        return bool(obj.isascii() or _is_normalized("NFC", obj))
    elif t is int:
        return bool(-MAX_SAFE_INT <= obj <= MAX_SAFE_INT)
    else:
        return obj is None or t is bool
    for value in values:
        tv = type(value)
        if tv is str:
            if not (value.isascii() or _is_normalized("NFC", value)):
                return False
        elif tv is int:
            if not -MAX_SAFE_INT <= value <= MAX_SAFE_INT:
                return False
        elif not (value is None or tv is bool or _fast_ok(value)):
            return False
    return True


def _check_str(s: str, where: str) -> None:
    try:
        s.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise _invalid(f"{where}: not encodable as UTF-8 (lone surrogate?)") from exc
    if not unicodedata.is_normalized("NFC", s):
        raise _invalid(f"{where}: string is not in Unicode NFC")


def _check(obj: Any, where: str) -> None:
    # bool before int: bool is a subclass of int and is fine as itself.
    if obj is None or isinstance(obj, bool):
        return
    if isinstance(obj, int):
        if not -MAX_SAFE_INT <= obj <= MAX_SAFE_INT:
            raise _invalid(f"{where}: integer {obj} is beyond 2**53 - 1")
        return
    if isinstance(obj, float):
        raise _invalid(f"{where}: floats are not allowed in canonical JSON")
    if isinstance(obj, str):
        _check_str(obj, where)
        return
    if isinstance(obj, dict):
        for key, value in obj.items():
            if not isinstance(key, str):
                raise _invalid(f"{where}: object key {key!r} is not a string")
            _check_str(key, f"{where}.{key}")
            _check(value, f"{where}.{key}")
        return
    if isinstance(obj, list | tuple):
        for i, value in enumerate(obj):
            _check(value, f"{where}[{i}]")
        return
    raise _invalid(f"{where}: {type(obj).__name__} is not a JSON value")


def canonical_bytes(obj: Any) -> bytes:
    """The canonical UTF-8 bytes of ``obj``; refuses what the form does not allow."""
    if not _fast_ok(obj):
        _check(obj, "$")  # raises with the path of the offending value
    try:
        if _C_ENCODE is not None and type(obj) is not str:
            return "".join(_C_ENCODE(obj, 0)).encode("utf-8")
        return _ENCODER.encode(obj).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise _invalid("string not encodable as UTF-8 (lone surrogate?)") from exc
    except (TypeError, ValueError) as exc:  # a subclass with odd behaviour: refuse rather than guess
        raise _invalid(str(exc)) from exc


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _invalid(f"duplicate key {key!r}")
        out[key] = value
    return out


def _no_float(text: str) -> Any:
    raise _invalid(f"float {text} is not allowed")


def _no_constant(text: str) -> Any:
    raise _invalid(f"{text} is not allowed")


def loads_strict(raw: bytes | str, *, require_canonical: bool = False) -> Any:
    """Parse JSON for verification: no duplicate keys, no floats, NaN or big integers."""
    if isinstance(raw, bytes):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _invalid("not UTF-8") from exc
    else:
        text = raw
    try:
        obj = json.loads(
            text, object_pairs_hook=_no_duplicates, parse_float=_no_float, parse_constant=_no_constant
        )
    except json.JSONDecodeError as exc:
        raise _invalid(f"not JSON: {exc}") from exc
    except RecursionError as exc:
        raise _invalid("nested too deeply") from exc
    canon = canonical_bytes(obj)
    if require_canonical and canon != text.encode("utf-8"):
        raise _invalid("not in canonical form")
    return obj


def b64encode(raw: bytes) -> str:
    """Standard padded base64 (the form keys and signatures take in JSON)."""
    return base64.b64encode(raw).decode("ascii")


def b64decode(text: str, *, size: int | None = None, what: str = "value") -> bytes:
    """Strict base64: only the canonical encoding of the bytes is accepted.

    Without the round-trip check, the unused low bits of the last character would
    let several texts decode to one signature: a changed byte that still verifies.
    """
    if not isinstance(text, str):
        raise _invalid(f"{what}: not a string")
    try:
        encoded = text.encode("ascii")
        # what base64.b64decode(validate=True) calls, without its wrapper (every envelope)
        raw = binascii.a2b_base64(encoded, strict_mode=True)
    except (binascii.Error, ValueError, UnicodeEncodeError) as exc:
        raise _invalid(f"{what}: not base64") from exc
    if binascii.b2a_base64(raw, newline=False) != encoded:
        raise _invalid(f"{what}: not canonical base64")
    if size is not None and len(raw) != size:
        raise _invalid(f"{what}: expected {size} bytes, got {len(raw)}")
    return raw


def b64url_encode(raw: bytes) -> str:
    """URL-safe base64 without padding (compact token text)."""
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def b64url_decode(text: str, *, what: str = "value") -> bytes:
    """Strict inverse of :func:`b64url_encode`."""
    try:
        pad = "=" * (-len(text) % 4)
        raw = base64.urlsafe_b64decode((text + pad).encode("ascii"))
    except (binascii.Error, ValueError, UnicodeEncodeError) as exc:
        raise _invalid(f"{what}: not base64url") from exc
    if b64url_encode(raw) != text:
        raise _invalid(f"{what}: not canonical base64url")
    return raw


def sha256_hex(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()
