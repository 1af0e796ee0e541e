"""``!fs.write <path>`` replying to an upload (pure parts): the reply relation, the bare
command, the approval text without the key, and the core turning it into fs.write."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshagents.apps.agents_and_robots.approvals import preview_args
from meshagents.apps.agents_and_robots.core import BotCore, DeviceInfo, Message, PostApprovalRequest, Reply
from meshagents.apps.agents_and_robots.uploads import reply_target, shown_args, upload_write_path
from meshagents.matrix import attachments

pytestmark = pytest.mark.unit

OP = "@op:hub"


def file_arg(data: bytes = b"payload") -> str:
    _, info = attachments.encrypt(data)
    ref = attachments.parse_file({**info, "url": "mxc://hub/Media1"})
    return attachments.FileArg(ref, hashlib.sha256(data).hexdigest(), len(data), "fw.bin").to_arg()


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ({"m.relates_to": {"m.in_reply_to": {"event_id": "$up"}}}, "$up"),
        ({"m.relates_to": {"rel_type": "m.thread", "event_id": "$t", "m.in_reply_to": {"event_id": "$u"}}},
         "$u"),
        ({"m.relates_to": {"rel_type": "m.replace", "event_id": "$x"}}, None),
        ({"m.relates_to": {"m.in_reply_to": {"event_id": "nope"}}}, None),
        ({"m.relates_to": {"m.in_reply_to": "$up"}}, None),
        ({"m.relates_to": "$up"}, None),
        ({}, None),
    ],
)
def test_reply_target(content: dict[str, Any], expected: str | None) -> None:
    assert reply_target(content) == expected


_KEYS = st.sampled_from(["m.relates_to", "m.in_reply_to", "event_id", "rel_type", "x"])
_JSON = st.recursive(st.none() | st.integers() | st.text(max_size=5) | st.just("$e"),
                     lambda c: st.dictionaries(_KEYS, c, max_size=3) | st.lists(c, max_size=2), max_leaves=8)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(_KEYS, _JSON, max_size=3))
def test_reply_target_never_raises(content: dict[str, Any]) -> None:
    got = reply_target(content)
    assert got is None or got.startswith("$")


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("!fs.write /tmp/fw.bin", "/tmp/fw.bin"),
        ("  !FS.WRITE '/tmp/a b'  ", "/tmp/a b"),
        ("> <@op:hub> fw.bin\n\n!fs.write /tmp/x", "/tmp/x"),  # Element's reply fallback
        ("!fs.write /tmp/x hello", None),  # content given: an ordinary fs.write
        ("!fs.write relative", None),
        ("!fs.write", None),
        ("!fs.read /tmp/x", None),
        ("!fs.write '/tmp/x", None),
    ],
)
def test_upload_write_path(body: str, expected: str | None) -> None:
    assert upload_write_path(body) == expected


def test_approval_text_shows_name_size_sha_but_never_the_key() -> None:
    arg = file_arg(b"12345")
    parsed = attachments.parse_file_arg(arg)
    shown = preview_args({"path": "/tmp/fw.bin", "file": arg})
    assert f"fw.bin, 5 bytes, sha256 {hashlib.sha256(b'12345').hexdigest()}" in shown
    assert parsed.file.key not in shown and "mxc://" not in shown
    assert shown_args({"path": "/p"}) == {"path": "/p"}
    assert "unreadable" in shown_args({"file": "{"})["file"]


def _core() -> tuple[BotCore, dict[str, DeviceInfo]]:
    view = {"fs.write": {"path_prefixes": ["/tmp"], "texts": {"content": 100, "file": 4096},
                         "requires_approval": True}}
    return BotCore(bot_user_id="@bot:hub", approvals_room_id="!appr:hub",
                   new_request_id=lambda: "req-1"), {"d": DeviceInfo("d", view, frozenset({OP}))}


def msg(body: str, **kw: Any) -> Message:
    return Message("!room:hub", "device", "d", OP, "$cmd", body, 1000.0, True, **kw)


def test_core_makes_fs_write_with_the_file() -> None:
    core, devices = _core()
    arg = file_arg()
    actions = core.on_message(msg("!fs.write /tmp/fw.bin", attachment=arg), devices)
    (post,) = [a for a in actions if isinstance(a, PostApprovalRequest)]
    assert "fw.bin, 7 bytes, sha256" in post.text
    req = core.book.get(post.approval_id)
    assert req is not None and req.args == {"path": "/tmp/fw.bin", "file": arg}


def test_core_says_why_when_the_reply_is_not_a_file() -> None:
    core, devices = _core()
    (reply,) = core.on_message(msg("!fs.write /tmp/x", attachment_problem="not_a_file: no"), devices)
    assert isinstance(reply, Reply) and reply.text == "not sent: not_a_file: no"
    # without a reply at all: the grammar's own error, which now mentions uploads
    (reply,) = core.on_message(msg("!fs.write /tmp/x"), devices)
    assert isinstance(reply, Reply) and "reply to a file" in reply.text


def test_core_keeps_the_path_rules() -> None:
    core, devices = _core()
    (reply,) = core.on_message(msg("!fs.write /tmp/e\u0301", attachment=file_arg()), devices)
    assert isinstance(reply, Reply) and "NFC" in reply.text


def test_file_arg_round_trip_and_refusals() -> None:
    arg = file_arg(b"abc")
    back = attachments.parse_file_arg(arg)
    assert back.to_arg() == arg and back.size == 3
    for bad in ("{}", "[]", 3, arg.replace('"size":3', '"size":-1'), arg.replace('"fw.bin"', '"../x"'),
                arg.replace(back.sha256, "XYZ")):
        with pytest.raises(attachments.FnError) as exc:
            attachments.parse_file_arg(bad)
        assert exc.value.code == "attachment_invalid"
    with pytest.raises(attachments.FnError) as exc:
        attachments.verify_plaintext(b"abd", back)
    assert exc.value.code == "file_hash_mismatch"
    with pytest.raises(attachments.FnError) as exc:
        attachments.verify_plaintext(b"abcd", back)
    assert exc.value.code == "file_size_mismatch"
