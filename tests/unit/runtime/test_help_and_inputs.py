"""The command line as people expect it: --help everywhere (exit 0), --version, completion,
per-parameter help, inputs refused where they are typed, progress only when wanted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from meshagents.errors import FnError
from meshagents.inputs import (
    check_device_name,
    check_host_port,
    check_hub_endpoint,
    check_url,
    parse_duration,
)
from meshagents.runtime.cli import cli
from meshagents.runtime.docstrings import param_docs, summary_text
from meshagents.runtime.indexer import build_index
from meshagents.state import project_root

ROOT = project_root()


def _invoke(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    res = CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False, prog_name="fn")
    return res.exit_code, res.stdout, res.stderr


@pytest.mark.parametrize("command", [[], ["list"], ["show"], ["run"], ["index"], ["stats"], ["doctor"],
                                     ["service"], ["test"], ["app"], ["bench"], ["e2e"], ["demo"], ["chat"],
                                     ["completion"]])
def test_every_command_has_help_and_exits_0(command: list[str]) -> None:
    rc, out, _ = _invoke(*command, "--help")
    assert rc == 0
    assert "Usage: fn" in out


def test_each_help_mentions_each_of_its_options() -> None:
    import click

    def walk(cmd: click.Command, path: list[str]) -> None:
        rc, out, _ = _invoke(*path, "--help")
        assert rc == 0, path
        for param in cmd.params:
            if isinstance(param, click.Option) and not param.hidden:
                assert any(opt in out for opt in param.opts), (path, param.opts)
        if isinstance(cmd, click.Group):
            for name, sub in cmd.commands.items():
                walk(sub, [*path, name])

    walk(cli, [])


def test_run_help_documents_host_json_exit_codes_and_state_dir() -> None:
    rc, out, _ = _invoke("run", "--help")
    assert rc == 0
    for needle in ("--host", "--json", "Exit codes", "FN_STATE_DIR", "FUNCTION_ID"):
        assert needle in out, needle


def test_run_function_help_describes_each_parameter() -> None:
    rc, out, _ = _invoke("run", "wg_keygen", "--help")
    assert rc == 0
    assert "--preshared" in out
    from meshagents.functions.wg.wg_keygen import wg_keygen

    described = param_docs(wg_keygen.__doc__)
    assert described, "wg_keygen documents its parameters"
    assert " ".join(described["preshared"].split()[:3]) in " ".join(out.split())


def test_version_names_the_version_and_the_catalog_hash() -> None:
    rc, out, _ = _invoke("--version")
    assert rc == 0
    assert out.startswith("meshagents ") and "catalog sha256:" in out


def test_completion_scripts() -> None:
    for shell in ("bash", "zsh"):
        rc, out, _ = _invoke("completion", shell)
        assert rc == 0 and "_FN_COMPLETE" in out


def test_completion_lists_function_ids_and_their_options() -> None:
    env = {"_FN_COMPLETE": "bash_complete", "COMP_WORDS": "fn run wg_key", "COMP_CWORD": "2"}
    res = CliRunner().invoke(cli, [], env=env, prog_name="fn")
    assert "wg_keygen" in res.stdout
    env = {"_FN_COMPLETE": "bash_complete", "COMP_WORDS": "fn run wg_keygen --pre", "COMP_CWORD": "3"}
    res = CliRunner().invoke(cli, [], env=env, prog_name="fn")
    assert "--preshared" in res.stdout


def test_every_catalog_parameter_has_a_description() -> None:
    result, _ = build_index(ROOT)
    missing = [f"{e.id}.{p.name}" for e in result.entries for p in e.params if not p.help]
    assert not missing, f"parameters without an Args: description: {missing}"


def test_app_help_reaches_the_app() -> None:
    env = {**os.environ, "FN_PROJECT_ROOT": str(ROOT)}
    for app, option in (("device_agent", "--config"), ("wg_hub", "--public-host"),
                        ("agents_dashboard", "--hub-api"), ("agents_and_robots", "--config")):
        proc = subprocess.run([sys.executable, "-m", "meshagents.runtime.cli", "app", app, "--help"],
                              capture_output=True, text=True, env=env, timeout=60)
        assert proc.returncode == 0, proc.stderr
        assert option in proc.stdout, (app, proc.stdout)


@pytest.mark.parametrize("pipeline", ["enroll_device", "provision_wg_hub", "sign_pending_manifests"])
def test_pipeline_help_exits_0(pipeline: str) -> None:
    proc = subprocess.run(["bash", str(ROOT / "pipelines" / pipeline), "--help"],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert pipeline in proc.stdout + proc.stderr


# ---- inputs checked where they are typed ------------------------------------------------

@pytest.mark.parametrize("value", [
    "vps.example.org:8443",          # no scheme: the device would fail later, after the token is spent
    "ftp://vps.example.org",
    "http://",
    "http://bad host:8443",
    "http://vps.example.org:99999",
    "http://0.0.0.0:8443",
    "http://127.0.0.1:8443",
    "http://localhost:8443",
    "https://vps.example.org/?x=1",
])
def test_bad_hub_endpoints_are_refused(value: str) -> None:
    with pytest.raises(FnError) as exc:
        check_hub_endpoint(value)
    assert exc.value.code == "bad_endpoint"
    assert "hub endpoint" in exc.value.message


@pytest.mark.parametrize("value", ["https://hub.example.org:8443", "http://198.19.0.1:8443/",
                                   "https://[2001:db8::1]:8443", "https://hub.example.org"])
def test_good_hub_endpoints_pass(value: str) -> None:
    assert check_hub_endpoint(value) == value.rstrip("/")


def test_loopback_only_when_asked() -> None:
    assert check_hub_endpoint("http://127.0.0.1:8443", allow_loopback=True) == "http://127.0.0.1:8443"


@pytest.mark.parametrize(("fn", "value", "code"), [
    (check_device_name, "Home WSL", "bad_device_name"),
    (check_device_name, "-x", "bad_device_name"),
    (check_host_port, "vps.example.org", "bad_host_port"),
    (check_host_port, "vps.example.org:0", "bad_host_port"),
    (parse_duration, "ten minutes", "bad_duration"),
    (parse_duration, "0s", "bad_duration"),
    (check_url, "example.org", "bad_url"),
])
def test_input_table(fn, value, code) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(FnError) as exc:
        fn(value)
    assert exc.value.code == code


def test_durations() -> None:
    assert parse_duration("250ms") == 0.25 and parse_duration("10m") == 600 and parse_duration(7) == 7


def test_token_for_an_unreachable_endpoint_is_refused_before_anything_is_signed(tmp_path: Path) -> None:
    env = {"FN_STATE_DIR": str(tmp_path), "FN_PROJECT_ROOT": str(ROOT)}
    rc, _, err = _invoke("run", "enrollment_token_create", "--device-name", "home-wsl",
                         "--hub-endpoint", "vps.example.org:8443", env=env)
    assert rc == 1
    assert json.loads(err.strip().splitlines()[-1])["error"] == "bad_endpoint"
    assert not list(tmp_path.rglob("*ed25519*")), "no key was made for a refused token"


def test_docstring_parsing() -> None:
    doc = "Sum two.\n\nArgs:\n    a: the first\n        continued.\n    b (int): second\n\n"
    doc += "Returns:\n    x: no\n"
    assert param_docs(doc) == {"a": "the first continued.", "b": "second"}
    assert summary_text(doc).startswith("Sum two.") and "Args:" not in summary_text(doc)


# ---- progress ---------------------------------------------------------------------------

def _pipeline(tmp_path: Path) -> Path:
    script = tmp_path / "demo_pipeline"
    script.write_text(
        "#!/usr/bin/env bash\nset -euo pipefail\n"
        f'source "{ROOT}/pipelines/lib.sh"\nparse_host_flag "$@"\nSTEPS_TOTAL=2\n'
        'x=$(step "first" echo one)\nstep "second" echo two\n'
    )
    return script


def test_pipeline_progress_on_a_tty_and_quiet_when_asked(tmp_path: Path) -> None:
    script = _pipeline(tmp_path)
    tty = subprocess.run(["script", "-qec", f"bash {script}", "/dev/null"], capture_output=True, text=True,
                         timeout=30)
    assert "[1/2] first" in tty.stdout and "[2/2] second" in tty.stdout and "done in" in tty.stdout
    quiet = subprocess.run(["bash", str(script), "--quiet"], capture_output=True, text=True, timeout=30)
    assert quiet.returncode == 0 and quiet.stdout.strip() == "two" and "[1/2]" not in quiet.stderr
