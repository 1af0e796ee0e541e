"""install.sh's token check — the Python block it runs before it fetches anything — taken from
the shipped install.sh and run here: real tokens from meshagents.trust.tokens pass, any edit
is refused (exit 3), a pinned operator key must match, and its stdlib ed25519 agrees with
PyNaCl's. The same check is run through ``sh install.sh`` in
tests/integration/apps/wg_hub/test_install_from_hub.py (nothing fetched, token not spent)."""

from __future__ import annotations

import base64
import json
import secrets
import subprocess
import sys
import time
from types import ModuleType
from typing import Any

import pytest
from nacl.signing import SigningKey

from meshagents.apps.wg_hub.install_bundle import installer_text
from meshagents.trust import tokens

BEGIN = "# --- token check"
END = "# --- end of token check ---"
BUNDLE = "ab" * 32


def block() -> str:
    text = installer_text()
    return text[text.index(BEGIN) : text.index(END)]


@pytest.fixture(scope="module")
def check() -> ModuleType:
    mod = ModuleType("install_token_check")
    exec(compile(block(), "install.sh:token-check", "exec"), mod.__dict__)
    return mod


def make(key: SigningKey | None = None, **kw: Any) -> str:
    args: dict[str, Any] = {"device_name": "pi", "hub_endpoint": "http://198.51.100.7:8443",
                            "bundle_sha256": BUNDLE, "ttl_s": 600}  # fmt: skip
    args.update(kw)
    return tokens.create(key or SigningKey.generate(), **args)[1]


def parts(token: str) -> tuple[dict[str, Any], bytes]:
    _, payload, sig = token.split(".")
    raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    return json.loads(raw), base64.urlsafe_b64decode(sig + "==")


def reassemble(body: dict[str, Any], sig: bytes) -> str:
    raw = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    enc = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
    return f"mat1.{enc}.{base64.urlsafe_b64encode(sig).rstrip(b'=').decode()}"


def refused(check: ModuleType, token: str, pin: str = "") -> bool:
    with pytest.raises(SystemExit) as exc:
        check.check(token, pin, int(time.time()))
    return exc.value.code == 3


def test_a_real_token_passes_and_yields_its_bundle_and_hub(check: ModuleType) -> None:
    key = SigningKey.generate()
    tok = make(key)
    assert check.check(tok, "", int(time.time())) == (BUNDLE, "http://198.51.100.7:8443")
    pin = base64.b64encode(bytes(key.verify_key)).decode()
    assert check.check(tok, pin, int(time.time()))[0] == BUNDLE


def test_an_edited_bundle_hash_is_refused(check: ModuleType) -> None:
    body, sig = parts(make())
    body["bundle_sha256"] = "cd" * 32  # another bundle the hub may well serve
    assert refused(check, reassemble(body, sig))


@pytest.mark.parametrize("field", ["hub_endpoint", "device_name", "expires_at", "operator_key"])
def test_any_edited_field_is_refused(check: ModuleType, field: str) -> None:
    body, sig = parts(make())
    if field == "expires_at":
        body[field] += 1
    elif field == "operator_key":
        body[field] = base64.b64encode(bytes(SigningKey.generate().verify_key)).decode()
    else:
        body[field] = body[field][:-1] + "x"
    assert refused(check, reassemble(body, sig))


def test_a_re_signed_token_is_refused_when_the_operator_key_is_pinned(check: ModuleType) -> None:
    mine, theirs = SigningKey.generate(), SigningKey.generate()
    pin = base64.b64encode(bytes(mine.verify_key)).decode()
    assert refused(check, make(theirs, bundle_sha256="cd" * 32), pin)


def test_a_flipped_signature_bit_and_non_canonical_payloads_are_refused(check: ModuleType) -> None:
    body, sig = parts(make())
    assert refused(check, reassemble(body, sig[:-1] + bytes([sig[-1] ^ 1])))
    tok = make()
    _, payload, s = tok.split(".")
    raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    spaced = base64.urlsafe_b64encode(raw.replace(b",", b", ", 1)).rstrip(b"=").decode()
    assert refused(check, f"mat1.{spaced}.{s}")
    for junk in ("mat1.x", "mat2." + tok[5:], tok + ".x", "mat1.!!.??"):
        assert refused(check, junk)


def test_no_bundle_and_expired_tokens_stop_with_3(check: ModuleType) -> None:
    with pytest.raises(SystemExit) as exc:
        check.check(make(bundle_sha256=None), "", int(time.time()))
    assert exc.value.code == 3
    old = make(now=int(time.time()) - 7200)
    with pytest.raises(SystemExit) as exc:
        check.check(old, "", int(time.time()))
    assert exc.value.code == 3


def test_the_stdlib_ed25519_agrees_with_pynacl(check: ModuleType) -> None:
    for _ in range(12):
        key = SigningKey.generate()
        msg = secrets.token_bytes(secrets.randbelow(200))
        sig = key.sign(msg).signature
        pub = bytes(key.verify_key)
        assert check.ed25519_verify(pub, msg, sig)
        assert not check.ed25519_verify(pub, msg + b"x", sig)
        assert not check.ed25519_verify(bytes(SigningKey.generate().verify_key), msg, sig)
        bad = bytearray(sig)
        bad[secrets.randbelow(64)] ^= 1 << secrets.randbelow(8)
        assert not check.ed25519_verify(pub, msg, bytes(bad))


def test_the_block_runs_as_install_sh_runs_it(tmp_path: Any) -> None:
    """python3 - TOKEN PIN <<block: prints '<bundle> <hub>', or exits 3 with REFUSED."""
    script = tmp_path / "check.py"
    script.write_text(block())
    tok = make()
    ok = subprocess.run([sys.executable, str(script), tok, ""], capture_output=True, text=True, check=False)
    assert ok.returncode == 0 and ok.stdout.split() == [BUNDLE, "http://198.51.100.7:8443"], ok.stderr
    body, sig = parts(tok)
    body["bundle_sha256"] = "cd" * 32
    bad = subprocess.run([sys.executable, str(script), reassemble(body, sig), ""], capture_output=True,
                         text=True, check=False)  # fmt: skip
    assert bad.returncode == 3 and "REFUSED" in bad.stderr and "nothing installed" in bad.stderr
