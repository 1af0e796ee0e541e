"""The manifest review: profile vs manifest vs previous, the device's token check, the golden table."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshagents.errors import FnError
from meshagents.trust import review
from tests.testbed.host import ROOT

GOLDEN = ROOT / "tests" / "resources" / "review" / "table.txt"
KEY_A, KEY_B, KEY_OP = "A" * 43 + "=", "B" * 43 + "=", "O" * 43 + "="


def workstation() -> dict[str, Any]:
    data = json.loads((ROOT / "meshagents" / "apps" / "wg_hub" / "profiles" / "workstation.json").read_text())
    return review.profile_content("workstation", data["capabilities"])


def manifest(caps: list[dict[str, Any]], **kw: Any) -> dict[str, Any]:
    return {
        "device_id": "home-wsl", "serial": 2, "capabilities": caps, "controllers": [KEY_A],
        "approvers": ["@op:hub"], "operator_key": KEY_OP, "expires_at": 2000000000,
        "device_key": "d", "wg_public_key": "w", "mesh_address": "10.42.0.10", "matrix_user": "@dev:hub",
        **kw,
    }  # fmt: skip


def edit(caps: list[dict[str, Any]], name: str, **changes: Any) -> list[dict[str, Any]]:
    return [{**c, **changes} if c["name"] == name else c for c in caps]


EXPECTED = review.Expected((KEY_A,), ("@op:hub",), KEY_OP)


def test_exactly_the_profile_is_ok() -> None:
    prof = workstation()
    rv = review.review(manifest(prof["capabilities"]), prof, None, EXPECTED)
    assert rv.ok and rv.differences == []
    review.check(rv)


@pytest.mark.parametrize(
    ("change", "subject", "phrase"),
    [
        (lambda c: [*c, review.profile_content("x", [{"name": "shell.exec.sh", "executables": ["/bin/sh"]}])
                    ["capabilities"][0]], "shell.exec.sh", "not in the profile"),
        (lambda c: edit(c, "shell.exec.ls", path_prefixes=["/"]), "shell.exec.ls", "/ not under"),
        (lambda c: edit(c, "system.reboot", requires_approval=False), "system.reboot", "lifted"),
        (lambda c: edit(c, "fs.read", limits={"max_bytes": 1 << 30}), "fs.read", "limits.max_bytes"),
        (lambda c: edit(c, "shell.exec.ls", executables=["/bin/ls", "/bin/sh"]), "shell.exec.ls", "/bin/sh"),
        (lambda c: edit(c, "shell.exec.ls", flags=None), "shell.exec.ls", "flags simple beyond"),
        (lambda c: edit(c, "fs.read", timeout_s=999), "fs.read", "timeout_s 999 > 5"),
        # a field this module does not know (the capability model may gain one): equal or beyond
        (lambda c: edit(c, "fs.read", arity={"-n": 1}), "fs.read", "arity"),
    ],
)  # fmt: skip
def test_anything_beyond_the_profile_is_refused_and_named(change: Any, subject: str, phrase: str) -> None:
    prof = workstation()
    rv = review.review(manifest(change(prof["capabilities"])), prof, None, EXPECTED)
    assert not rv.ok
    assert [d.subject for d in rv.refused] == [subject]
    assert phrase in rv.refused[0].detail
    with pytest.raises(FnError) as err:
        review.check(rv)
    assert err.value.code == "manifest_beyond_profile" and subject in err.value.message
    # named with --allow: signed (shown as allowed)
    allowed = review.review(manifest(change(prof["capabilities"])), prof, None, EXPECTED, allow=[subject])
    assert allowed.ok and any(d.allowed for d in allowed.differences)


def test_narrower_is_shown_never_refused() -> None:
    prof = workstation()
    caps = edit(prof["capabilities"], "shell.exec.ls", path_prefixes=["/home/operator"], timeout_s=5)
    caps = [c for c in caps if c["name"] != "system.reboot"]
    rv = review.review(manifest(caps), prof, None, EXPECTED)
    assert rv.ok
    assert {d.kind for d in rv.differences} == {"narrower", "omitted"}


@pytest.mark.parametrize(
    ("field", "value", "subject"),
    [("controllers", [KEY_A, KEY_B], "controllers"), ("approvers", ["@evil:hub"], "approvers"),
     ("operator_key", KEY_B, "operator_key")],
)  # fmt: skip
def test_config_differences_are_refused_even_with_allow(field: str, value: Any, subject: str) -> None:
    prof = workstation()
    m = manifest(prof["capabilities"], **{field: value})
    rv = review.review(m, prof, None, EXPECTED, allow=[subject, *[c["name"] for c in prof["capabilities"]]])
    assert [d.subject for d in rv.refused] == [subject]
    with pytest.raises(FnError) as err:
        review.check(rv)
    assert err.value.code == "manifest_config_mismatch"


def test_previous_manifest_changes_and_serial_must_grow() -> None:
    prof = workstation()
    previous = manifest(prof["capabilities"][:4], serial=1)
    rv = review.review(manifest(prof["capabilities"]), prof, previous, EXPECTED)
    assert rv.ok
    assert {d.subject for d in rv.differences if d.kind == "since_previous"} == {
        c["name"] for c in prof["capabilities"][4:]
    }
    stale = review.review(manifest(prof["capabilities"], serial=1), prof, previous, EXPECTED)
    assert [d.subject for d in stale.refused] == ["serial"]


def test_a_reissue_beyond_the_enrollment_token_is_shown_not_refused() -> None:
    prof = workstation()
    token = review.profile_content("minimal", prof["capabilities"][:4])
    rv = review.note_beyond_token(review.review(manifest(prof["capabilities"]), prof, None, EXPECTED), token)
    assert rv.ok
    notes = [d for d in rv.differences if d.kind == "beyond_token"]
    assert {d.subject for d in notes} == {c["name"] for c in prof["capabilities"][4:]}
    assert "(token profile minimal)" in notes[0].detail and rv.marks(notes[0].subject) == "^"
    assert "^ [note]" in review.render(rv)


def test_profile_hash_is_canonical_and_content_bound() -> None:
    prof = workstation()
    same = review.profile_content("workstation", list(reversed(list(reversed(prof["capabilities"])))))
    assert review.profile_sha256(prof) == review.profile_sha256(same)
    other = review.profile_content("workstation", prof["capabilities"][:-1])
    assert review.profile_sha256(prof) != review.profile_sha256(other)


def test_device_check_against_token() -> None:
    prof = workstation()
    pin = review.profile_sha256(prof)
    ok = manifest(prof["capabilities"][:3])
    review.check_against_token(ok, profile_sha256_pin=pin, controllers_pin=[KEY_A], profile=prof)
    cases = [
        (manifest(edit(prof["capabilities"], "shell.exec.ls", path_prefixes=["/"])), prof, [KEY_A],
         "manifest_beyond_token"),
        (manifest(prof["capabilities"], controllers=[KEY_A, KEY_B]), prof, [KEY_A], "manifest_beyond_token"),
        # the hub swaps the profile for a wider one: it no longer hashes to the pin
        (ok, {**prof, "capabilities": [*prof["capabilities"], {"name": "shell.exec.sh"}]}, [KEY_A],
         "profile_mismatch"),
        (ok, None, [KEY_A], "profile_mismatch"),
    ]  # fmt: skip
    for m, p, ctl, code in cases:
        with pytest.raises(FnError) as err:
            review.check_against_token(m, profile_sha256_pin=pin, controllers_pin=ctl, profile=p)
        assert err.value.code == code
    # an unpinned token (no hash, no controllers) checks nothing
    review.check_against_token(ok, profile_sha256_pin=None, controllers_pin=None, profile=None)


# Literal capabilities (not normalised through the model), so the golden text does not move
# when the capability model gains a field with a default.
GOLDEN_PROFILE = {
    "name": "workstation",
    "capabilities": [
        {"name": "system.info", "timeout_s": 10},
        {"name": "shell.exec.ls", "executables": ["/bin/ls"], "flags": ["-l", "-a"],
         "path_prefixes": ["/home", "/tmp"], "timeout_s": 10},
        {"name": "fs.read", "path_prefixes": ["/home", "/tmp"], "limits": {"max_bytes": 1048576}},
        {"name": "docker.container.logs", "limits": {"tail": 1000}},
        {"name": "system.reboot", "executables": ["/sbin/reboot"], "max_args": 0, "requires_approval": True},
    ],
}  # fmt: skip


def test_rendered_table_matches_the_golden_file() -> None:
    prof = GOLDEN_PROFILE
    caps = edit(prof["capabilities"], "shell.exec.ls", path_prefixes=["/"])
    caps = edit(caps, "system.reboot", requires_approval=False)
    caps = edit(caps, "fs.read", limits={"max_bytes": 4096}, arity={"-n": 1})
    caps = [c for c in caps if c["name"] != "docker.container.logs"]
    caps.append({"name": "shell.exec.sh", "executables": ["/bin/sh"], "timeout_s": 30})
    previous = manifest(prof["capabilities"][:2], serial=1)
    rv = review.review(
        manifest(caps, controllers=[KEY_A, KEY_B]), prof, previous, EXPECTED, allow=["shell.exec.sh"]
    )
    text = review.render(rv)
    if os.environ.get("UPDATE_GOLDEN"):
        GOLDEN.write_text(text)
    assert text == GOLDEN.read_text()
    assert rv.to_json()["table"] == text


# --------------------------------------------------------------- properties

WIDER = [
    lambda c: {**c, "timeout_s": c["timeout_s"] + 1},
    lambda c: {**c, "output_cap_bytes": c["output_cap_bytes"] + 1},
    lambda c: {**c, "max_args": c["max_args"] + 1},
    lambda c: {**c, "executables": [*c["executables"], "/bin/sh"]},
    lambda c: {**c, "requires_approval": False} if c["requires_approval"] else {**c, "path_prefixes": ["/"]},
    lambda c: {**c, "limits": {**c["limits"], "extra": 1}},
    lambda c: {**c, "cwd": "/"},
]
NARROWER = [
    lambda c: {**c, "timeout_s": max(1, c["timeout_s"] - 1)},
    lambda c: {**c, "executables": c["executables"][:1]},
    lambda c: {**c, "requires_approval": True},
    lambda c: {**c, "limits": {k: v // 2 for k, v in c["limits"].items()}},
    lambda c: {**c, "path_prefixes": [p + "/sub" for p in c["path_prefixes"]]},
]


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_narrowing_stays_within_and_any_widening_is_caught(data: st.DataObject) -> None:
    prof = workstation()
    caps = prof["capabilities"]
    i = data.draw(st.integers(0, len(caps) - 1))
    narrowed = [data.draw(st.sampled_from(NARROWER))(c) for c in caps]
    assert review.within_profile(narrowed, caps) == []
    widened = list(narrowed)
    widened[i] = data.draw(st.sampled_from(WIDER))(caps[i])
    found = review.within_profile(widened, caps)
    assert found and {d.subject for d in found} == {caps[i]["name"]}
