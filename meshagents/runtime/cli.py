"""The ``fn`` command line: list, show, run, index, stats, doctor, service.

Exit codes: 0 success, 1 failure (``{"error", "message"}`` JSON on stderr),
2 bad usage or an unknown function id (with the nearest ids).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import click

from meshagents.errors import FnError, UsageError
from meshagents.fsutil import write_atomic
from meshagents.runtime.jsonout import dumps
from meshagents.state import checkout_root, package_dir, project_root


def _fail(exc: FnError) -> None:
    click.echo(json.dumps(exc.to_json(), ensure_ascii=False), err=True)
    sys.exit(exc.exit_code)


def version_text() -> str:
    """``fn --version``: the package version and the hash of the catalog it runs."""
    import hashlib
    from importlib.metadata import PackageNotFoundError, version

    try:
        ver = version("meshagents")
    except PackageNotFoundError:
        ver = "unknown"
    path = project_root() / "meshagents/registry.toml"
    try:
        digest = "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    except OSError:
        digest = "missing"
    return f"meshagents {ver} (catalog {digest})"


def _print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        click.echo(version_text())
        ctx.exit(0)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--version", is_flag=True, expose_value=False, is_eager=True, callback=_print_version,
    help="Print the version and the catalog's hash, then exit.",
)
def cli() -> None:
    """Function registry of the mesh device agents.

    Exit codes: 0 success; 1 failure, with {"error": CODE, "message": ...} on stderr;
    2 bad usage. State (keys, databases, telemetry) lives in FN_STATE_DIR (default
    /var/lib/meshagents as root, ~/.local/state/meshagents otherwise).
    """


@cli.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the catalog as JSON.")
@click.option("--group", default=None, help="Only this group.")
def list_cmd(as_json: bool, group: str | None) -> None:
    """List the catalog functions."""
    from meshagents.runtime.registry import load_catalog

    try:
        entries = [e for e in load_catalog().values() if group is None or e.group == group]
    except FnError as exc:
        _fail(exc)
        return
    if as_json:
        click.echo(dumps([e.to_json() for e in entries]))
        return
    width = max((len(e.id) for e in entries), default=10)
    for e in entries:
        req = f"  [{', '.join(e.requires)}]" if e.requires else ""
        click.echo(f"{e.id:<{width}}  {e.group:<10} {e.summary}{req}")


@cli.command("show")
@click.argument("function_id")
def show_cmd(function_id: str) -> None:
    """Show one function's catalog entry as JSON."""
    from meshagents.runtime.registry import lookup

    try:
        click.echo(dumps(lookup(function_id).to_json()))
    except FnError as exc:
        _fail(exc)


def _complete_function_id(
    _ctx: click.Context, _param: click.Parameter, incomplete: str
) -> list[click.shell_completion.CompletionItem]:
    from click.shell_completion import CompletionItem

    from meshagents.runtime.registry import load_catalog

    try:
        catalog = load_catalog()
    except FnError:
        return []
    return [CompletionItem(fid, help=e.summary) for fid, e in catalog.items() if fid.startswith(incomplete)]


def _complete_function_params(
    ctx: click.Context, _param: click.Parameter | None, incomplete: str
) -> list[click.shell_completion.CompletionItem]:
    from click.shell_completion import CompletionItem

    from meshagents.runtime.registry import load_catalog

    try:
        entry = load_catalog().get(str(ctx.params.get("function_id") or ""))
    except FnError:
        return []
    if entry is None:
        return []
    items = []
    for p in entry.params:
        flag = "--" + str(p["name"]).replace("_", "-")
        if flag.startswith(incomplete):
            items.append(CompletionItem(flag, help=str(p.get("help", ""))))
    return items


class _RunCommand(click.Command):
    """``fn run``: after FUNCTION_ID, ``--<TAB>`` completes that function's own options."""

    def shell_complete(
        self, ctx: click.Context, incomplete: str
    ) -> list[click.shell_completion.CompletionItem]:
        items = super().shell_complete(ctx, incomplete)
        if incomplete.startswith("-") and ctx.params.get("function_id"):
            items += _complete_function_params(ctx, None, incomplete)
        return items


_RUN_OPTIONS_HELP = """
--host and --json go before FUNCTION_ID. With --host the host needs only python3 and
tar (docs/remote.md). Each function's own options: fn run FUNCTION_ID --help (or fn
show FUNCTION_ID); the ids: fn list.

\b
Exit codes: 0 success; 1 failure, with {"error": CODE, "message": ...} on stderr;
            2 bad usage or an unknown function id (with the nearest ids).
State dir:  FN_STATE_DIR, else /var/lib/meshagents as root, ~/.local/state/meshagents
            otherwise (keys, databases, telemetry).
"""


@cli.command(
    "run",
    cls=_RunCommand,
    context_settings={"ignore_unknown_options": True, "help_option_names": []},
    epilog=_RUN_OPTIONS_HELP,
)
@click.option("--host", default=None, metavar="HOST", help="Run on HOST over SSH (~/.ssh/config applies).")
@click.option("--json", "as_json", is_flag=True, help="The result as one line of JSON; no progress output.")
@click.argument("function_id", shell_complete=_complete_function_id)
@click.argument("params", nargs=-1, type=click.UNPROCESSED, shell_complete=_complete_function_params)
@click.pass_context
def run_cmd(
    ctx: click.Context, host: str | None, as_json: bool, function_id: str, params: tuple[str, ...]
) -> None:
    """Run FUNCTION_ID with --param value options; prints its result as JSON."""
    from meshagents.runtime.api import default_caller, invoke
    from meshagents.runtime.params import help_text, parse_args
    from meshagents.runtime.registry import resolve

    if function_id in ("--help", "-h"):
        click.echo(ctx.get_help())
        return
    argv = list(params)
    if as_json:
        os.environ["FN_QUIET"] = "1"  # what it starts stays quiet too (pipelines/lib.sh reads it)
    try:
        if host is not None:
            from meshagents.remote.runner import run_remote

            sys.exit(run_remote(host, function_id, argv))
        fn = resolve(function_id)
        if "--help" in argv or "-h" in argv:
            click.echo(help_text(function_id, fn))
            return
        kwargs = parse_args(function_id, fn, argv)
        caller = os.environ.get("FN_CALLER", "cli") if default_caller() == "api" else default_caller()
        result = invoke(function_id, fn, kwargs, caller=caller)
    except FnError as exc:
        _fail(exc)
        return
    click.echo(dumps(result, indent=None if as_json else 2))


@cli.command("index")
@click.option("--check", is_flag=True, help="Exit 1 when meshagents/registry.toml is stale.")
def index_cmd(check: bool) -> None:
    """Rebuild meshagents/registry.toml from meshagents/functions/ (sorted, deterministic)."""
    from meshagents.runtime.indexer import build_index

    try:
        root = checkout_root("index")
    except FnError as exc:
        _fail(exc)
        return
    result, text = build_index(root)
    for problem in result.problems:
        click.echo(str(problem), err=True)
    if result.errors:
        sys.exit(1)
    path = root / "meshagents/registry.toml"
    current = path.read_text(encoding="utf-8") if path.exists() else ""
    if check:
        if current != text:
            click.echo("meshagents/registry.toml is stale: run ./fn index", err=True)
            sys.exit(1)
        click.echo(f"meshagents/registry.toml is current ({len(result.entries)} functions)")
        _index_errors(root, check=True)
        return
    if current != text:
        write_atomic(path, text, mode=0o666, fsync=False)
    click.echo(f"meshagents/registry.toml: {len(result.entries)} functions")
    _index_errors(root, check=False)


def _index_errors(root: Path, *, check: bool) -> None:
    """docs/errors.md from meshagents/errors.toml and the codes the tree raises."""
    from meshagents.runtime.errordoc import DOC, build

    if not (root / "docs").is_dir():  # installed from a wheel: no docs to keep
        return
    problems, text = build(root)
    for problem in problems:
        click.echo(f"meshagents/errors.toml: {problem}", err=True)
    if problems:
        sys.exit(1)
    path = root / DOC
    current = path.read_text(encoding="utf-8") if path.exists() else ""
    if check:
        if current != text:
            click.echo(f"{DOC} is stale: run ./fn index", err=True)
            sys.exit(1)
        click.echo(f"{DOC} is current")
    elif current != text:
        tmp = path.with_suffix(".md.tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
        click.echo(f"{DOC}: written")


@cli.command("dist")
@click.option("--outdir", type=click.Path(path_type=Path), default=None, help="Default: <checkout>/dist.")
def dist_cmd(outdir: Path | None) -> None:
    """Build the sdist and the wheel (python -m build, backend pinned in pyproject.toml)."""
    import subprocess

    try:
        root = checkout_root("dist")
    except FnError as exc:
        _fail(exc)
        return
    out = outdir or root / "dist"
    # build's isolated environment installs the pinned setuptools, not the venv's own
    proc = subprocess.run([sys.executable, "-m", "build", "--outdir", str(out), str(root)], check=False)
    if proc.returncode != 0:
        _fail(FnError("dist_failed", f"python -m build exited {proc.returncode} (its output is above)"))
    for path in sorted(out.glob("meshagents-*")):
        click.echo(str(path))


@cli.command("stats")
@click.option("--json", "as_json", is_flag=True)
@click.option("--recent", type=int, default=0, help="Also show the N most recent calls.")
def stats_cmd(as_json: bool, recent: int) -> None:
    """Count, success rate, p50 and p95 per function (from telemetry)."""
    from meshagents.runtime import telemetry

    rows = telemetry.stats()
    if as_json:
        out: Any = rows if not recent else {"stats": rows, "recent": telemetry.recent(limit=recent)}
        click.echo(dumps(out))
        return
    click.echo(f"{'function':<32} {'count':>7} {'success':>8} {'p50 ms':>9} {'p95 ms':>9}")
    for r in rows:
        click.echo(
            f"{r['function_id']:<32} {r['count']:>7} {r['success_rate'] * 100:>7.1f}% "
            f"{r['p50_ms']:>9.2f} {r['p95_ms']:>9.2f}"
        )


@cli.command("doctor")
@click.argument("check", default="all")
@click.option("--json", "as_json", is_flag=True)
def doctor_cmd(check: str, as_json: bool) -> None:
    """Run one doctor check (or all); exit 1 on any error."""
    from meshagents.runtime.doctor import CHECKS, run_checks

    names = sorted(CHECKS) if check == "all" else [check]
    unknown = [n for n in names if n not in CHECKS]
    if unknown:
        _fail(FnError("unknown_check", f"no doctor check {unknown[0]!r}; known: {', '.join(sorted(CHECKS))}"))
    try:
        root = checkout_root("doctor")
    except FnError as exc:
        _fail(exc)
        return
    results = run_checks(root, names)
    problems = [p for name in names for p in results[name]]
    errors = [p for p in problems if p.level == "error"]
    if as_json:
        click.echo(dumps({"ok": not errors, "problems": [p.to_json() for p in problems]}))
    else:
        for p in problems:
            click.echo(str(p))
        click.echo(
            f"doctor: {len(errors)} error(s), {len(problems) - len(errors)} warning(s) in {', '.join(names)}"
        )
    sys.exit(1 if errors else 0)


@cli.group("service")
def service_group() -> None:
    """Service units of the apps."""


@service_group.command("render")
@click.argument("app")
def service_render(app: str) -> None:
    """Print the systemd unit of APP (from its app.md service: block)."""
    from meshagents.runtime.appspec import load_app, render_unit

    root = project_root()
    if app == "device_agent":  # one owner of the device's unit: the one `meshagents enroll` installs
        from meshagents.enroll.service import default_spec, system_unit
        from meshagents.state import state_dir

        state = state_dir() if os.geteuid() != 0 else Path("/var/lib/meshagents")
        spec = default_spec(state / "device_agent/config.json", state, "wg-quick@wg0.service")
        click.echo(system_unit(spec), nl=False)
        return
    try:
        click.echo(render_unit(load_app(root / "meshagents" / "apps" / app), root), nl=False)
    except FnError as exc:
        _fail(exc)


@cli.command("test", context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.option("--each", is_flag=True, help="Run every test of the given files alone, one pytest each.")
@click.option(
    "--jobs", type=click.IntRange(min=1), default=1, show_default=True, help="With --each: at once."
)
@click.pass_context
def test_cmd(ctx: click.Context, each: bool, jobs: int) -> None:
    """Run the whole test suite (pytest); extra arguments go to pytest.

    The whole suite runs in two lanes at once: the tests that boot a Debian VM (marker
    ``vm``) beside the rest, one seed for both; a selection (paths, -m, -k, --lf) runs as
    one plain pytest (meshagents/runtime/testrun.py).

    With --each: ``fn test --each FILE... [PYTEST-OPTION...]`` collects the node ids of the
    files, runs each test in a pytest process of its own (the options go to every one),
    prints a summary and exits 1 if any failed, so a test that passes only after its
    neighbours is found.
    """
    from meshagents.runtime import testrun

    try:
        root = checkout_root("test")
    except FnError as exc:
        _fail(exc)
        return
    args = list(ctx.args)
    os.chdir(root)
    if each:
        if not args or args[0].startswith("-"):
            raise click.UsageError(
                "--each needs at least one test file: fn test --each FILE... [PYTEST-OPTION...]"
            )
        sys.exit(testrun.run_each(args, jobs, click.echo))
    if testrun.wants_lanes(args, root / "tests"):
        sys.exit(testrun.run_lanes(args, root / "tests", click.echo))
    os.execv(sys.executable, [*testrun.PYTEST, *args])  # noqa: S606 - hand over to pytest


def _complete_app(
    _ctx: click.Context, _param: click.Parameter, incomplete: str
) -> list[click.shell_completion.CompletionItem]:
    from click.shell_completion import CompletionItem

    root = package_dir() / "apps"
    names = sorted(p.parent.name for p in root.glob("*/__main__.py"))
    return [CompletionItem(n) for n in names if n.startswith(incomplete)]


@cli.command(
    "app",
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True, "help_option_names": []},
)
@click.argument("name", shell_complete=_complete_app)
@click.pass_context
def app_cmd(ctx: click.Context, name: str) -> None:
    """Run app NAME in the foreground (``python -m apps.NAME``); extra arguments go to it.

    The app's own options: fn app NAME --help. Apps: wg_hub, agents_and_robots,
    device_agent, agents_dashboard (docs/architecture.md).
    """
    root = project_root()
    if name in ("--help", "-h"):
        click.echo(ctx.get_help())
        return
    if not (root / "meshagents" / "apps" / name / "__main__.py").is_file():
        _fail(FnError("app_not_found", f"no runnable app meshagents/apps/{name} (needs __main__.py)"))
    os.environ.setdefault("FN_CALLER", name)
    os.execv(sys.executable, [sys.executable, "-m", f"meshagents.apps.{name}", *ctx.args])  # noqa: S606


@cli.command("completion")
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completion_cmd(shell: str) -> None:
    """Print the shell completion script for SHELL (function ids and their options).

    bash: eval "$(./fn completion bash)"   zsh: eval "$(./fn completion zsh)"
    """
    from click.shell_completion import get_completion_class

    klass = get_completion_class(shell)
    if klass is None:  # pragma: no cover - click ships all three
        _fail(UsageError(f"no completion for {shell}"))
        return
    click.echo(klass(cli, {}, "fn", "_FN_COMPLETE").source())


@cli.command("bench")
@click.argument("names", nargs=-1)
def bench_cmd(names: tuple[str, ...]) -> None:
    """Run the benchmark scripts bench/bench_<NAME>.py (all when none named); they print figures."""
    import subprocess

    try:
        root = checkout_root("bench")
    except FnError as exc:
        _fail(exc)
        return
    scripts = sorted((root / "bench").glob("bench_*.py"))
    chosen = [p for p in scripts if not names or p.stem.removeprefix("bench_") in names]
    if names and len(chosen) != len(names):
        known = ", ".join(p.stem.removeprefix("bench_") for p in scripts)
        _fail(FnError("unknown_benchmark", f"known benchmarks: {known}"))
    rc = 0
    for script in chosen:
        click.echo(f"== {script.stem.removeprefix('bench_')}")
        rc |= subprocess.run([sys.executable, str(script)], cwd=root, check=False).returncode
    sys.exit(rc)


@cli.command("e2e", context_settings={"ignore_unknown_options": True})
@click.argument("app", required=False)
@click.argument("pytest_args", nargs=-1, type=click.UNPROCESSED)
def e2e_cmd(app: str | None, pytest_args: tuple[str, ...]) -> None:
    """Run the e2e_checks of meshagents/apps/*/app.md (APP only when named); one e2e_runs row per check."""
    from meshagents.testbed.e2e import load_checks, record, run_checks

    if app is not None and app.startswith("-"):  # `./fn e2e -x`: a pytest option, no app
        pytest_args = (app, *pytest_args)
        app = None
    try:
        root = checkout_root("e2e")
        checks = load_checks(root, app)
        results = run_checks(root, checks, pytest_args)
        record(results)
    except FnError as exc:
        _fail(exc)
        return
    for r in results:
        mark = "ok  " if r.ok else "FAIL"
        click.echo(f"{mark} {r.check.app}/{r.check.id}  {r.duration_ms / 1000:.1f} s  {r.detail}")
    sys.exit(0 if results and all(r.ok for r in results) else 1)


@cli.command("demo")
@click.option("--smoke", is_flag=True, help="Unattended: up, one !exec through Matrix, round trip, down.")
@click.option("--no-docker", is_flag=True, help="Without the Docker engine and its demo container.")
@click.option("--cleanup", is_flag=True, help="Remove what demo runs killed with SIGKILL left behind.")
def demo_cmd(smoke: bool, no_docker: bool, cleanup: bool) -> None:
    """Run the whole system locally (as root): Synapse, hub, bot, dashboard, two devices; Ctrl-C stops it."""
    from meshagents.testbed.rig.demo import run_demo

    try:
        if cleanup:
            from meshagents.testbed.rig.runs import cleanup_dead

            done = cleanup_dead(lambda m: click.echo(m))
            click.echo(f"cleanup: {len(done)} dead run(s) removed")
            return
        sys.exit(run_demo(smoke_test=smoke, docker=not no_docker, echo=lambda m: click.echo(m)))
    except FnError as exc:
        _fail(exc)


@cli.command("chat")
@click.argument("device")
@click.option("--connection", type=click.Path(path_type=Path), default=None,
              help="The demo's connection file (default <state>/demo/connection.json).")
def chat_cmd(device: str, connection: Path | None) -> None:
    """A terminal operator client for DEVICE's room (#dev-DEVICE) in the running demo."""
    import asyncio

    from meshagents.testbed.rig.chat import chat, load_connection, target_from_connection
    from meshagents.testbed.rig.demo import connection_path

    try:
        target = target_from_connection(load_connection(connection or connection_path()), device)
        sys.exit(asyncio.run(chat(device, target, out=lambda m: click.echo(m))))
    except FnError as exc:
        _fail(exc)
    except KeyboardInterrupt:
        sys.exit(0)


@cli.group("operator")
def operator_group() -> None:
    """The operator's Matrix account: recovery key (secret storage), identity confirmation."""


def _operator_account(connection: Path | None) -> Any:
    from meshagents.matrix.recovery import Account
    from meshagents.testbed.rig.chat import load_connection
    from meshagents.testbed.rig.demo import connection_path

    conn = load_connection(connection or connection_path())
    password = os.environ.get("FN_OPERATOR_PASSWORD") or str(conn.get("operator_password", ""))
    try:
        return Account(
            str(conn["homeserver"]), str(conn["operator_user"]), password, Path(conn["cross_signing_path"])
        )
    except KeyError as exc:
        raise FnError("bad_connection_file", f"the connection file lacks {exc}") from exc


@operator_group.command("recovery-key")
@click.argument("action", type=click.Choice(["create", "rotate", "status"]), default="status")
@click.option("--connection", type=click.Path(path_type=Path), default=None,
              help="Connection file (homeserver, operator login, cross-signing seeds); default the demo's.")
@click.option("--passphrase", is_flag=True, help="Also derive the key from a passphrase (asked twice).")
def recovery_key_cmd(action: str, connection: Path | None, passphrase: bool) -> None:
    """Secret storage for Element: create the recovery key, rotate it, or show what is stored.

    The key is printed once and kept nowhere by this command: write it down."""
    from meshagents.matrix.recovery import create_recovery, recovery_status, rotate_recovery

    try:
        acct = _operator_account(connection)
        if action == "status":
            click.echo(dumps(recovery_status(acct)))
            return
        phrase = click.prompt("Passphrase", hide_input=True, confirmation_prompt=True) if passphrase else None
        out = (create_recovery if action == "create" else rotate_recovery)(acct, phrase)
    except FnError as exc:
        _fail(exc)
        return
    click.echo(dumps({"recovery_key": out.recovery_key, "key_id": out.key_id,
                      "backup_version": out.backup_version}))  # fmt: skip
    if action == "rotate":
        click.echo("the previous recovery key no longer opens anything", err=True)


@operator_group.command("trust-matrix-identity")
@click.option("--connection", type=click.Path(path_type=Path), default=None,
              help="Connection file (homeserver, operator login, rooms); default the demo's.")
@click.option("--master-key", default=None, help="Refuse unless the server's master key is this one.")
@click.option("--yes", is_flag=True, help="Do not ask before signing.")
def trust_matrix_identity_cmd(connection: Path | None, master_key: str | None, yes: bool) -> None:
    """After an identity reset in Element: sign the new master key with the operator key.

    The bot and the device agents refuse the new key until they see this statement (posted
    in #operator-approvals); then they trust the reset sessions at once."""
    from meshagents.matrix.recovery import confirm_identity, recovery_status
    from meshagents.testbed.rig.chat import load_connection
    from meshagents.testbed.rig.demo import connection_path
    from meshagents.trust.keystore import OPERATOR_KEY, load_signing_key

    try:
        conn = load_connection(connection or connection_path())
        if conn.get("operator_state") and "FN_STATE_DIR" not in os.environ:
            os.environ["FN_STATE_DIR"] = str(conn["operator_state"])  # the demo's key store
        acct = _operator_account(connection)
        if not yes:
            current = recovery_status(acct)["master_key"]
            click.confirm(f"Trust {current} as the master key of {acct.user_id}?", abort=True)
        key = load_signing_key(OPERATOR_KEY)
        rooms = [str(conn.get("rooms", {}).get("approvals") or "")]
        out = confirm_identity(acct, key, [r for r in rooms if r], master_key)
    except FnError as exc:
        _fail(exc)
        return
    click.echo(dumps({k: v for k, v in out.items() if k != "statement"}))


from meshagents.enroll.cli import register as _register_enroll  # noqa: E402 - enroll, leave, agent upgrade
from meshagents.runtime.cli_vm import vm_group  # noqa: E402 - the group's code lives there
from meshagents.runtime.hubcli import hub_group  # noqa: E402 - the group lives in its own module

_register_enroll(cli)
cli.add_command(vm_group)
cli.add_command(hub_group)


def main() -> None:
    """The console script ``meshagents`` (an install) and ``./fn`` (a checkout) both land here."""
    name = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    cli(prog_name="meshagents" if name == "meshagents" else "fn")


if __name__ == "__main__":
    main()
