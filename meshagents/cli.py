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

from meshagents.errors import FnError
from meshagents.jsonout import dumps
from meshagents.state import project_root


def _fail(exc: FnError) -> None:
    click.echo(json.dumps(exc.to_json(), ensure_ascii=False), err=True)
    sys.exit(exc.exit_code)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """Function registry of the mesh device agents."""


@cli.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the catalog as JSON.")
@click.option("--group", default=None, help="Only this group.")
def list_cmd(as_json: bool, group: str | None) -> None:
    """List the catalog functions."""
    from meshagents.registry import load_catalog

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
    from meshagents.registry import lookup

    try:
        click.echo(dumps(lookup(function_id).to_json()))
    except FnError as exc:
        _fail(exc)


@cli.command(
    "run",
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True, "help_option_names": []},
)
@click.option("--host", default=None, metavar="HOST", help="Run on HOST over SSH (~/.ssh/config applies).")
@click.argument("function_id")
@click.pass_context
def run_cmd(ctx: click.Context, host: str | None, function_id: str) -> None:
    """Run FUNCTION_ID with --param value options; prints its result as JSON."""
    from meshagents.api import default_caller, invoke
    from meshagents.params import help_text, parse_args
    from meshagents.registry import resolve

    argv = list(ctx.args)
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
    click.echo(dumps(result))


@cli.command("index")
@click.option("--check", is_flag=True, help="Exit 1 when registry.toml is stale.")
def index_cmd(check: bool) -> None:
    """Rebuild registry.toml from functions/ (sorted, deterministic)."""
    from meshagents.indexer import build_index

    root = project_root()
    result, text = build_index(root)
    for problem in result.problems:
        click.echo(str(problem), err=True)
    if result.errors:
        sys.exit(1)
    path = root / "registry.toml"
    current = path.read_text(encoding="utf-8") if path.exists() else ""
    if check:
        if current != text:
            click.echo("registry.toml is stale: run ./fn index", err=True)
            sys.exit(1)
        click.echo(f"registry.toml is current ({len(result.entries)} functions)")
        return
    if current != text:
        tmp = path.with_suffix(".toml.tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
    click.echo(f"registry.toml: {len(result.entries)} functions")


@cli.command("stats")
@click.option("--json", "as_json", is_flag=True)
@click.option("--recent", type=int, default=0, help="Also show the N most recent calls.")
def stats_cmd(as_json: bool, recent: int) -> None:
    """Count, success rate, p50 and p95 per function (from telemetry)."""
    from meshagents import telemetry

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
    from meshagents.doctor import CHECKS, run_checks

    names = sorted(CHECKS) if check == "all" else [check]
    unknown = [n for n in names if n not in CHECKS]
    if unknown:
        _fail(FnError("unknown_check", f"no doctor check {unknown[0]!r}; known: {', '.join(sorted(CHECKS))}"))
    results = run_checks(project_root(), names)
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
    from meshagents.appspec import load_app, render_unit

    root = project_root()
    try:
        click.echo(render_unit(load_app(root / "apps" / app), root), nl=False)
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

    With --each: ``fn test --each FILE... [PYTEST-OPTION...]`` collects the node ids of the
    files, runs each test in a pytest process of its own (the options go to every one),
    prints a summary and exits 1 if any failed, so a test that passes only after its
    neighbours is found.
    """
    root = project_root()
    args = list(ctx.args) or [str(root / "tests")]
    os.chdir(root)
    if each:
        sys.exit(_test_each(list(ctx.args), jobs))
    os.execv(sys.executable, [sys.executable, "-m", "pytest", *args])  # noqa: S606 - hand over to pytest


def _test_each(args: list[str], jobs: int) -> int:
    """The --each runner; 0 when every test passed alone, 1 otherwise."""
    import re
    import subprocess
    import threading
    import time
    from concurrent.futures import ThreadPoolExecutor

    first_opt = next((i for i, a in enumerate(args) if a.startswith("-")), len(args))
    files, opts = args[:first_opt], args[first_opt:]
    if not files:
        raise click.UsageError(
            "--each needs at least one test file: fn test --each FILE... [PYTEST-OPTION...]"
        )
    pytest = [sys.executable, "-m", "pytest"]
    # file order, not a random one, and the user's .pytest_cache (last failed, last seed) left alone
    quiet = ["-p", "no:randomly", "-p", "no:cacheprovider"]
    # one node id a line: that is what "-q" prints, so the user's own -q/-v stay out of it
    selecting = [o for o in opts if o not in ("--quiet", "--verbose") and not re.fullmatch(r"-[qv]+", o)]
    collect = subprocess.run(
        [*pytest, "--collect-only", "-q", *quiet, *files, *selecting], capture_output=True, text=True
    )
    ids = [ln for ln in collect.stdout.splitlines() if "::" in ln and not ln.startswith((" ", "<"))]
    if collect.returncode != 0 or not ids:
        click.echo(collect.stdout + collect.stderr, nl=False)
        click.echo(f"fn test --each: collecting {' '.join(files)} failed (pytest exit {collect.returncode})")
        return 1
    click.echo(f"fn test --each: {len(ids)} test(s) from {len(files)} path(s), each alone, {jobs} at once")
    lock = threading.Lock()
    failed: list[str] = []
    t_all = time.perf_counter()

    def run_one(node: str) -> None:
        t0 = time.perf_counter()
        proc = subprocess.run(
            [*pytest, "-p", "no:cacheprovider", node, *opts], capture_output=True, text=True
        )
        dt = time.perf_counter() - t0
        with lock:
            if proc.returncode == 0:
                click.echo(f"PASS {node} ({dt:.1f} s)")
            else:
                failed.append(node)
                click.echo(proc.stdout + proc.stderr, nl=False)
                click.echo(f"FAIL {node} ({dt:.1f} s, pytest exit {proc.returncode})")

    with ThreadPoolExecutor(jobs) as pool:
        list(pool.map(run_one, ids))
    total = time.perf_counter() - t_all
    click.echo(
        f"fn test --each: {len(ids) - len(failed)} passed alone, {len(failed)} failed, in {total:.0f} s"
    )
    for node in sorted(failed):
        click.echo(f"  failed alone: {node}")
    return 1 if failed else 0


@cli.command("app", context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.argument("name")
@click.pass_context
def app_cmd(ctx: click.Context, name: str) -> None:
    """Run app NAME in the foreground (``python -m apps.NAME``); extra arguments go to it."""
    root = project_root()
    if not (root / "apps" / name / "__main__.py").is_file():
        _fail(FnError("app_not_found", f"no runnable app apps/{name} (needs __main__.py)"))
    os.environ.setdefault("FN_CALLER", name)
    os.execv(sys.executable, [sys.executable, "-m", f"apps.{name}", *ctx.args])  # noqa: S606


@cli.command("bench")
@click.argument("names", nargs=-1)
def bench_cmd(names: tuple[str, ...]) -> None:
    """Run the benchmark scripts bench/bench_<NAME>.py (all when none named); they print figures."""
    import subprocess

    root = project_root()
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
    """Run the e2e_checks of apps/*/app.md (APP only when named); one e2e_runs row per check."""
    from meshagents.e2e import load_checks, record, run_checks

    if app is not None and app.startswith("-"):  # `./fn e2e -x`: a pytest option, no app
        pytest_args = (app, *pytest_args)
        app = None
    try:
        checks = load_checks(project_root(), app)
        results = run_checks(project_root(), checks, pytest_args)
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
    from meshagents.rig.demo import run_demo

    try:
        if cleanup:
            from meshagents.rig.runs import cleanup_dead

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

    from meshagents.rig.chat import chat, load_connection, target_from_connection
    from meshagents.rig.demo import connection_path

    try:
        target = target_from_connection(load_connection(connection or connection_path()), device)
        sys.exit(asyncio.run(chat(device, target, out=lambda m: click.echo(m))))
    except FnError as exc:
        _fail(exc)
    except KeyboardInterrupt:
        sys.exit(0)


def main() -> None:
    cli(prog_name="fn")


if __name__ == "__main__":
    main()
