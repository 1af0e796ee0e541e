"""Output cap, line framing and `since` parsing: pure helpers."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meshagents.docker.lines import LineSplitter, parse_since, split_lines
from meshagents.docker.logs import cap_lines, check_bounds
from meshagents.docker.output import CappedBuffer, cap_bytes
from meshagents.errors import FnError

pytestmark = pytest.mark.unit


def test_cap_under_and_over() -> None:
    c = cap_bytes(b"hello", 10)
    assert (c.text, c.truncated, c.total) == ("hello", False, 5)
    c = cap_bytes(b"hello world", 5)
    assert (c.text, c.truncated, c.total) == ("hello", True, 11)
    assert cap_bytes(b"abc", 0).text == ""


def test_cap_never_cuts_a_character() -> None:
    data = "añ€😀".encode()  # 1 + 2 + 3 + 4 bytes
    assert cap_bytes(data, 1).text == "a"
    assert cap_bytes(data, 2).text == "a"
    assert cap_bytes(data, 3).text == "añ"
    assert cap_bytes(data, 5).text == "añ"
    assert cap_bytes(data, 6).text == "añ€"
    assert cap_bytes(data, 9).text == "añ€"


@given(text=st.text(max_size=200), cap=st.integers(min_value=0, max_value=300))
def test_property_cap_is_a_clean_prefix(text: str, cap: int) -> None:
    data = text.encode()
    c = cap_bytes(data, cap)
    assert len(c.text.encode()) <= cap
    assert text.startswith(c.text)
    assert c.truncated == (len(data) > cap)
    if c.truncated:  # steps back at most over one partial character
        assert len(c.text.encode()) > cap - 4


@given(chunks=st.lists(st.binary(max_size=50), max_size=20), cap=st.integers(min_value=0, max_value=200))
def test_property_buffer_equals_one_shot(chunks: list[bytes], cap: int) -> None:
    buf = CappedBuffer(cap)
    for ch in chunks:
        buf.feed(ch)
    assert buf.result() == cap_bytes(b"".join(chunks), cap)


def test_line_splitter_joins_chunks() -> None:
    s = LineSplitter()
    assert s.feed(b"ab") == []
    assert s.feed(b"c\nde\r\nf") == ["abc", "de"]
    assert s.flush() == ["f"]
    assert s.flush() == []
    assert list(split_lines([b"x\n", b"", b"y"])) == ["x", "y"]


def test_line_splitter_bounds_a_runaway_line() -> None:
    s = LineSplitter(max_line_bytes=4)
    assert s.feed(b"abcdefghij") == ["abcd", "efgh"]
    assert s.flush() == ["ij"]


@given(st.lists(st.binary(max_size=30), max_size=15))
def test_property_split_matches_splitlines(chunks: list[bytes]) -> None:
    data = b"".join(chunks)
    pieces = data.split(b"\n")
    if pieces[-1] == b"":  # nothing after the last newline (or no data at all)
        pieces.pop()
    expected = [ln.rstrip(b"\r").decode("utf-8", "replace") for ln in pieces]
    assert list(split_lines(chunks)) == expected


def test_parse_since() -> None:
    now = 1_700_000_000.5
    assert parse_since(None, now) is None
    assert parse_since("", now) is None
    assert parse_since("1699999999", now) == 1699999999
    assert parse_since(1699999999, now) == 1699999999
    assert parse_since("30s", now) == 1_700_000_000 - 30
    assert parse_since("10m", now) == 1_700_000_000 - 600
    assert parse_since("2h", now) == 1_700_000_000 - 7200
    assert parse_since("1d", now) == 1_700_000_000 - 86400
    assert parse_since("2023-11-14T22:13:20Z", now) == 1_700_000_000
    assert parse_since("2023-11-14T23:13:20+01:00", now) == 1_700_000_000
    for bad in ("yesterday", "10x", "2023-11-14T22:13:20", "-5m"):
        with pytest.raises(FnError) as err:
            parse_since(bad, now)
        assert err.value.code == "rejected_args"


def test_cap_lines_keeps_the_newest() -> None:
    lines = ["one", "two", "three"]
    assert cap_lines(lines, 100) == (lines, False)
    assert cap_lines(lines, 10) == (["two", "three"], True)  # 4 + 6 bytes with newlines
    assert cap_lines(lines, 9) == (["three"], True)
    assert cap_lines(lines, 0) == ([], True)
    assert cap_lines([], 0) == ([], False)


def test_log_bounds() -> None:
    check_bounds(0)
    check_bounds(10_000, 3600)
    for lines, secs in ((-1, None), (10_001, None), (1, 0), (1, 3601)):
        with pytest.raises(FnError) as err:
            check_bounds(lines, secs)
        assert err.value.code == "rejected_args"
