"""Each doctor check against the deliberately broken samples in tests/resources/doctor."""

from __future__ import annotations

from pathlib import Path

import pytest

from meshagents.runtime.appspec import load_app, render_unit
from meshagents.runtime.doctor import run_checks
from meshagents.runtime.doctor.secrets import scan_text
from tests.testbed.host import ROOT

pytestmark = pytest.mark.unit


def _messages(root: Path, check: str) -> list[str]:
    return [f"{p.level} {p.where} {p.message}" for p in run_checks(root, [check])[check]]


def test_uses_functions(sample_root: Path) -> None:
    msgs = _messages(sample_root, "uses-functions")
    assert any("undeclared_call" in m and "calls demo_echo but does not declare it" in m for m in msgs)
    assert any("declared_unused" in m and "declares demo_echo but the code never calls it" in m for m in msgs)
    assert not any("good_app" in m for m in msgs)


def test_unused(sample_root: Path) -> None:
    msgs = _messages(sample_root, "unused")
    assert any("demo_lonely is used by no app" in m for m in msgs)
    assert not any("demo_echo " in m for m in msgs)
    assert all(m.startswith("warning") for m in msgs)


def test_services_spec(sample_root: Path) -> None:
    msgs = _messages(sample_root, "services-spec")
    assert len(msgs) == 1
    assert "bad_service" in msgs[0] and "restart, environment, after" in msgs[0]


def test_secrets(sample_root: Path) -> None:
    msgs = _messages(sample_root, "secrets")
    assert any("leaked.conf:3" in m and "WireGuard PrivateKey" in m for m in msgs)
    assert any("leaked.pem:1" in m and "OPENSSH PRIVATE KEY" in m for m in msgs)
    assert not any("placeholder.conf" in m for m in msgs)


def test_secrets_field_patterns() -> None:
    assert scan_text('{"private_key": "' + "ab" * 32 + '"}')
    assert not scan_text('{"public_key": "' + "ab" * 32 + '"}')
    assert not scan_text('private_key = "short"')


def test_repository_is_clean() -> None:
    root = ROOT
    results = run_checks(root, ["secrets", "services-spec", "uses-functions", "registry"])
    errors = [p for problems in results.values() for p in problems if p.level == "error"]
    assert errors == []


def test_render_unit(sample_root: Path) -> None:
    unit = render_unit(load_app(sample_root / "meshagents" / "apps" / "good_app"), Path("/opt/meshagents"))
    assert "ExecStart=/opt/meshagents/fn app good_app --port 8080" in unit
    assert "User=meshagents" in unit
    assert 'Environment="FN_STATE_DIR=/var/lib/meshagents"' in unit
    assert "After=network-online.target" in unit
    assert "Restart=on-failure" in unit


def test_pipeline_calls_through_lib_helpers() -> None:
    from meshagents.runtime.doctor.usage_scan import pipeline_calls

    text = 'keys=$(step "k" fn_run wg_keygen)\nfn_local operator_key_init\n./fn run --host vps wg_status\n'
    assert pipeline_calls(text) == {"wg_keygen", "operator_key_init", "wg_status"}
