"""Canonical JSON: sorted, compact, integers only, NFC only, strict parsing and base64."""

from __future__ import annotations

import json
import random
import unicodedata
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meshagents.errors import FnError
from meshagents.trust.canonical import (
    MAX_SAFE_INT,
    b64decode,
    b64encode,
    b64url_decode,
    b64url_encode,
    canonical_bytes,
    loads_strict,
)

pytestmark = pytest.mark.unit

nfc_text = (
    st.text(max_size=20)
    .filter(lambda s: unicodedata.is_normalized("NFC", s))
    .filter(lambda s: all(not 0xD800 <= ord(c) <= 0xDFFF for c in s))
)
values = st.recursive(
    st.none() | st.booleans() | st.integers(-MAX_SAFE_INT, MAX_SAFE_INT) | nfc_text,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(nfc_text, children, max_size=4),
    max_leaves=20,
)


def test_form_is_sorted_compact_utf8() -> None:
    assert canonical_bytes({"b": 1, "a": [True, None, "é"]}) == '{"a":[true,null,"é"],"b":1}'.encode()


@pytest.mark.parametrize("bad", [1.0, float("nan"), 2**53, -(2**53), {"a": 0.5}, {1: "x"}, "e\u0301", b"x"])
def test_refused(bad: Any) -> None:
    with pytest.raises(FnError) as err:
        canonical_bytes(bad)
    assert err.value.code == "canonical_invalid"


def test_lone_surrogate_refused() -> None:
    with pytest.raises(FnError):
        canonical_bytes("\ud800")


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values)
def test_round_trip_and_stable_under_key_order(obj: Any) -> None:
    raw = canonical_bytes(obj)
    assert loads_strict(raw, require_canonical=True) == obj

    def shuffle(o: Any) -> Any:
        if isinstance(o, dict):
            items = list(o.items())
            random.shuffle(items)
            return {k: shuffle(v) for k, v in items}
        if isinstance(o, list):
            return [shuffle(v) for v in o]
        return o

    assert canonical_bytes(shuffle(obj)) == raw


@pytest.mark.parametrize(
    "text",
    ['{"a":1,"a":2}', '{"a":1.5}', '{"a":NaN}', '{"a":1e3}', '{"a":9007199254740992}', "[", '"e\\u0301"'],
)
def test_strict_parser_refuses(text: str) -> None:
    with pytest.raises(FnError):
        loads_strict(text)


def test_require_canonical() -> None:
    assert loads_strict('{"a":1,"b":2}', require_canonical=True) == {"a": 1, "b": 2}
    for text in ['{"b":2,"a":1}', '{"a": 1}', '["\\u00e9"]', '["\\u001F"]']:
        assert loads_strict(text) is not None
        with pytest.raises(FnError):
            loads_strict(text, require_canonical=True)


def test_strict_base64() -> None:
    raw = bytes(range(64))
    text = b64encode(raw)
    assert b64decode(text, size=64) == raw
    # Same bytes, different unused low bits in the last character: refused.
    last = text[-3]
    sibling = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    alt = sibling[(sibling.index(last) ^ 1)]
    with pytest.raises(FnError):
        b64decode(text[:-3] + alt + text[-2:], size=64)
    with pytest.raises(FnError):
        b64decode(text.rstrip("="), size=64)
    with pytest.raises(FnError):
        b64decode(text, size=32)
    assert b64url_decode(b64url_encode(raw)) == raw
    with pytest.raises(FnError):
        b64url_decode(b64url_encode(raw) + "=")


def test_json_module_agrees_with_canonical_for_ascii() -> None:
    obj = {"z": [1, 2, {"y": "x"}], "a": None}
    assert canonical_bytes(obj) == json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()
