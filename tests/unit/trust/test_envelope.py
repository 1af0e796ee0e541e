"""Envelopes: the check order, each status code, replay across restarts, tampering."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nacl.signing import SigningKey

from meshagents.state import project_root
from meshagents.trust import envelope as E
from meshagents.trust.canonical import canonical_bytes, loads_strict
from meshagents.trust.models import Envelope, Manifest
from meshagents.trust.noncestore import NonceStore
from meshagents.trust.signing import TYPE_ENVELOPE, public_b64, sign_payload
from tests.testbed.trust_keys import Keys, manifest_body

pytestmark = pytest.mark.unit

NOW = 1_800_000_000


@pytest.fixture
def manifest(make_manifest: Callable[..., Manifest]) -> Manifest:
    return make_manifest(Path("/tmp"), issued_at=NOW - 100, expires_at=NOW + 86400)


@pytest.fixture
def nonces(tmp_path: Path) -> NonceStore:
    return NonceStore(tmp_path / "nonces.sqlite")


def env(keys: Keys, **kw: Any) -> Envelope:
    args = kw.pop("args", {"argv": ["ls", "/tmp"]})
    fields: dict[str, Any] = {"device_id": "dev-0001", "capability": "shell.exec.ls", "now": NOW}
    fields.update(kw)
    key = fields.pop("key", keys.controller)
    return E.sign(key, args=args, **fields)


def check(e: Envelope | dict[str, Any], m: Manifest, n: NonceStore, **kw: Any) -> str:
    kw.setdefault("now", NOW)
    return E.verify(e, m, n, **kw).status


def test_ok_and_replay(keys: Keys, manifest: Manifest, nonces: NonceStore) -> None:
    e = env(keys)
    res = E.verify(e.model_dump(mode="json"), manifest, nonces, now=NOW, consume=True)
    assert res.ok and res.decision is not None and res.decision.argv is not None
    assert check(e, manifest, nonces) == "rejected_nonce"


def test_each_status(keys: Keys, manifest: Manifest, nonces: NonceStore) -> None:
    other = SigningKey.generate()
    assert check(env(keys, key=other), manifest, nonces) == "rejected_signature"
    forged = env(keys, key=other).model_dump(mode="json") | {"controller": keys.ctl_pub}
    assert check(forged, manifest, nonces) == "rejected_signature"
    assert check(env(keys, device_id="dev-0002"), manifest, nonces) == "rejected_device"
    assert check(env(keys, now=NOW - 400, ttl_s=300), manifest, nonces) == "rejected_expired"
    assert check(env(keys, now=NOW + 100), manifest, nonces) == "rejected_expired"
    assert check(env(keys, ttl_s=7200), manifest, nonces) == "rejected_expired"
    assert check(env(keys, capability="shell.exec.rm"), manifest, nonces) == "rejected_capability"
    assert check(env(keys, args={"argv": ["ls", "/etc"]}), manifest, nonces) == "rejected_args"
    reboot = {"capability": "system.reboot", "args": {"argv": ["true"]}}
    assert check(env(keys, **reboot), manifest, nonces) == "rejected_approval"
    assert check(env(keys, approval="$ev", **reboot), manifest, nonces) == "rejected_approval"
    assert check(
        env(keys, approval="$ev", **reboot), manifest, nonces, approval_check=lambda e, m: False
    ) == ("rejected_approval")

    def boom(e: Envelope, m: Manifest) -> bool:
        raise RuntimeError("room unreachable")

    assert (
        check(env(keys, approval="$ev", **reboot), manifest, nonces, approval_check=boom)
        == "rejected_approval"
    )
    seen: list[str] = []

    def good(e: Envelope, m: Manifest) -> bool:
        seen.append(f"{e.request_id}:{E.args_digest(e.args)}")
        return e.approval == "$ev"

    assert check(env(keys, approval="$ev", **reboot), manifest, nonces, approval_check=good) == "ok"
    assert seen and seen[0].count(":") == 1
    assert nonces.count() == 0  # verify without consume never writes


def test_skew_allowance(keys: Keys, manifest: Manifest, nonces: NonceStore) -> None:
    e = env(keys, now=NOW, ttl_s=60)
    assert check(e, manifest, nonces, now=NOW + 60 + 30) == "ok"
    assert check(e, manifest, nonces, now=NOW + 60 + 31) == "rejected_expired"
    assert check(e, manifest, nonces, now=NOW + 61, skew_s=0) == "rejected_expired"
    assert check(e, manifest, nonces, now=NOW - 30) == "ok"
    assert check(e, manifest, nonces, now=NOW - 31) == "rejected_expired"


def test_order_first_failure_wins(keys: Keys, manifest: Manifest, nonces: NonceStore) -> None:
    """Each case breaks two checks; the earlier one in the documented order is reported."""
    other = SigningKey.generate()
    assert check(env(keys, key=other, device_id="dev-9"), manifest, nonces) == "rejected_signature"
    assert check(env(keys, device_id="dev-9", now=NOW - 10_000), manifest, nonces) == "rejected_device"
    used = env(keys, now=NOW - 10_000)
    nonces.consume(used.nonce, NOW + 10)
    assert check(used, manifest, nonces) == "rejected_expired"
    dup = env(keys, capability="nope")
    nonces.consume(dup.nonce, NOW + 10)
    assert check(dup, manifest, nonces) == "rejected_nonce"
    assert check(env(keys, capability="nope", args={"x": 1}), manifest, nonces) == "rejected_capability"
    bad_args = env(keys, capability="system.reboot", args={"argv": ["true", "x"]})
    assert check(bad_args, manifest, nonces) == "rejected_args"


@settings(
    max_examples=300,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    deadline=None,
)
@given(st.data())
def test_any_single_byte_change_is_refused(
    keys: Keys, manifest: Manifest, nonces: NonceStore, data: st.DataObject
) -> None:
    e = env(keys, args={"argv": ["ls", "-l", "/tmp"]}, approval="$event:x")
    raw = bytearray(canonical_bytes(e.model_dump(mode="json")))
    pos = data.draw(st.integers(0, len(raw) - 1))
    raw[pos] = data.draw(st.integers(0, 255).filter(lambda b: b != raw[pos]))
    try:
        parsed = loads_strict(bytes(raw))
    except Exception:
        return
    assert check(parsed, manifest, nonces) != "ok"


def test_argv_reorder_and_unicode_tricks_refused(keys: Keys, manifest: Manifest, nonces: NonceStore) -> None:
    e = env(keys, args={"argv": ["ls", "-l", "/tmp"]}).model_dump(mode="json")
    assert check(dict(reversed(list(e.items()))), manifest, nonces) == "ok"  # key order: irrelevant
    swapped = json.loads(json.dumps(e))
    swapped["args"]["argv"] = ["ls", "/tmp", "-l"]
    assert check(swapped, manifest, nonces) == "rejected_signature"
    body = {k: v for k, v in e.items() if k != "signature"}
    body["args"] = {"argv": ["ls", "/tmp/caf\u00e9"]}
    body["signature"] = sign_payload(body, keys.controller, TYPE_ENVELOPE)
    nfd = json.loads(json.dumps(body))
    nfd["args"]["argv"][1] = "/tmp/cafe\u0301"
    assert check(nfd, manifest, nonces) == "rejected_signature"


def test_nonce_prune_keeps_live_ones(tmp_path: Path) -> None:
    store = NonceStore(tmp_path / "n.sqlite")
    store.consume("a" * 20, 100)
    store.consume("b" * 20, 200)
    assert store.prune(150) == 1
    assert not store.seen("a" * 20) and store.seen("b" * 20)


REPLAY_CHILD = """
import json, sys
from pathlib import Path
from meshagents.trust import envelope
from meshagents.trust.models import Manifest
from meshagents.trust.noncestore import NonceStore
m = Manifest.model_validate(json.loads(sys.argv[1]))
e = json.loads(sys.argv[2])
res = envelope.verify(e, m, NonceStore(Path(sys.argv[3])), now=int(sys.argv[4]), consume=True)
print(res.status)
"""


def test_replay_refused_from_a_fresh_process(keys: Keys, tmp_path: Path) -> None:
    now = int(time.time())
    m = manifest_body(keys, Path("/tmp"))
    from meshagents.trust import manifest as M

    signed = M.sign(m, keys.operator)
    e = E.sign(
        keys.controller, device_id="dev-0001", capability="shell.exec.ls", args={"argv": ["ls", "/tmp"]}
    )
    store = tmp_path / "device.sqlite"

    def run() -> str:
        out = subprocess.run(
            [
                sys.executable,
                "-c",
                REPLAY_CHILD,
                signed.model_dump_json(),
                e.model_dump_json(),
                str(store),
                str(now),
            ],
            capture_output=True,
            text=True,
            check=True,
            cwd=project_root(),
        )
        return out.stdout.strip()

    assert run() == "ok"
    assert run() == "rejected_nonce"


def test_public_b64_of_controller_listed(keys: Keys, manifest: Manifest) -> None:
    assert public_b64(keys.controller) in manifest.controllers


def test_signed_but_incomplete_envelope_refused(keys: Keys, manifest: Manifest, nonces: NonceStore) -> None:
    body = env(keys).model_dump(mode="json")
    body.pop("signature")
    body.pop("approval")
    body["signature"] = sign_payload(body, keys.controller, TYPE_ENVELOPE)
    res = E.verify(body, manifest, nonces, now=NOW)
    assert res.status == "rejected_signature" and "complete" in res.reason
