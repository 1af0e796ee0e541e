"""Which replies go as a file (meshagents/apps/device_agent/attach.py): binary or over the notice
budget, capped by the manifest's attachment_cap_bytes (absent: output_cap_bytes)."""

from __future__ import annotations

import pytest

from meshagents.apps.device_agent import attach, replies
from meshagents.apps.device_agent.pipeline import Outcome
from meshagents.trust.models import Capability

pytestmark = pytest.mark.unit


def outcome(output: str = "", cap: int = 1 << 20, **kw: object) -> Outcome:
    return Outcome("ok", "exit 0", "req-1", "dev", "shell.exec.cat", 0, output, attachment_cap=cap,
                   **kw)  # type: ignore[arg-type]


def test_caps_from_the_manifest() -> None:
    old = Capability(name="fs.read", output_cap_bytes=4096)
    assert attach.attachment_cap(old) == 4096 and attach.capture_cap(old) == 4096
    assert "attachment_cap_bytes" not in old.model_dump(mode="json")  # older manifests stay byte-equal
    big = Capability(name="fs.read", output_cap_bytes=4096, attachment_cap_bytes=1 << 23)
    assert attach.attachment_cap(big) == 1 << 23 and attach.capture_cap(big) == 1 << 23
    off = Capability(name="fs.read", attachment_cap_bytes=0)
    assert attach.attachment_cap(off) == 0 and attach.capture_cap(off) == 65536
    assert attach.attachment_cap(None) == 0


def test_short_text_stays_inline_long_text_goes_as_a_file() -> None:
    assert attach.plan(outcome("short\n"), 16_000) is None
    long = "line\n" * 4000
    plan = attach.plan(outcome(long), 16_000)
    assert plan is not None and plan.data == long.encode() and plan.name == "output-req-1.txt"
    assert plan.mimetype == "text/plain" and not plan.cut
    assert attach.plan(outcome(long, cap=0), 16_000) is None  # attachments off: cut as before
    capped = attach.plan(outcome(long, cap=100), 16_000)
    assert capped is not None and len(capped.data) == 100 and capped.total == len(long) and capped.cut


def test_fs_read_binary_file_goes_as_itself() -> None:
    raw = b"\x89PNG\r\n\x1a\n\x00\x00"
    out = outcome("garbage", data={attach.FILE_BYTES: raw, attach.FILE_PATH: "/home/op/pic.png"})
    plan = attach.plan(out, 16_000)
    assert plan is not None and plan.data == raw and plan.name == "pic.png" and plan.binary
    assert plan.mimetype == "image/png"
    small_text = outcome("hi\n", data={attach.FILE_BYTES: b"hi\n", attach.FILE_PATH: "/x/a.txt"})
    assert attach.plan(small_text, 16_000) is None


def test_notice_names_the_file_and_shows_a_head() -> None:
    long = "x" * 10_000
    sent = replies.SentFile("output-req-1.txt", 10_000, 10_000, "ab" * 32)
    body, html_body = replies.notice(outcome(long), 16_000, sent)
    assert "follows as the encrypted file output-req-1.txt: 10000 bytes, sha256 " + "ab" * 32 in body
    assert "ab" * 32 in html_body
    assert len(body) < 3000 and "(output truncated)" not in body
    content = replies.result_content(outcome(long), 16_000, sent)
    assert content["attachment"]["sha256"] == "ab" * 32 and content["truncated"] is False
    body, _ = replies.notice(outcome("\x00" * 50), 16_000, sent, binary=True)
    assert "\x00" not in body
    cut = replies.SentFile("o.txt", 100, 200, "00" * 32)
    assert replies.result_content(outcome(long), 16_000, cut)["truncated"] is True
