"""``meshagents enroll``: token to a running agent in one process, and ``--resume`` after a failure.

    enroll(Options(token=...), progress=Progress()) -> dict     # what enrollment_submit returned + more
    resume(state, progress) -> dict

Order (``[n/m]`` on stderr): [1] check this device — nothing is spent yet, a problem
stops here with :data:`~meshagents.enroll.precheck.EXIT_PRECHECK` and the same token
enrolls once it is fixed; [2] the device key; [3] enroll with the hub and verify the
manifest — the token is spent here, and from now on every step is recorded in the
journal; [4] the WireGuard config and interface (on Termux, or with
``--wg-config-only``: the config file and a QR for the WireGuard app); [5] the
handshake and the hub's ``/healthz`` over the mesh; [6] the agent's config, its
service, and a wait until the agent is ready and stays up (``meshagents.enroll.ready``: its
ready marker names the unit's main process, still the same a few seconds later; otherwise
``agent_crashed`` / ``agent_not_ready``, and ``--resume`` restarts it and waits again). Then
the device's room is printed.

Each catalog step is called in this process (``meshagents.runtime.api.call``), so a
whole enrollment costs one Python start-up, not one per step.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from meshagents import readymark as marker_mod
from meshagents.enroll import journal as journal_mod
from meshagents.enroll import precheck, probe, service
from meshagents.enroll import ready as ready_mod
from meshagents.enroll.precheck import EXIT_PRECHECK, ServiceKind
from meshagents.errors import FnError

CALLER = "meshagents.enroll"
TOTAL = 6


class PrecheckFailed(FnError):
    """One or more local prerequisites are missing; the token was not used."""

    exit_code = EXIT_PRECHECK


@dataclass(frozen=True)
class Options:
    token: str
    hub_url: str | None = None
    interface: str = "wg0"
    config_dir: Path = Path("/etc/wireguard")
    out_dir: Path | None = None
    service: ServiceKind | None = None  # None: the platform's default (precheck.default_service)
    wg_unit: bool = True  # enable the root unit that brings the interface up at boot
    sandbox_weak: bool = False
    wg_config_only: bool | None = None  # None: only on Termux
    mesh_timeout_s: float = 10.0
    #: how long the agent may take to log in and join its rooms after its service started
    ready_timeout_s: float = 120.0

    def to_json(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d.pop("token")
        return {k: str(v) if isinstance(v, Path) else v for k, v in d.items()}

    @classmethod
    def from_json(cls, token: str, d: dict[str, Any]) -> Options:
        d = dict(d)
        d["config_dir"] = Path(d["config_dir"])
        d["out_dir"] = Path(d["out_dir"]) if d.get("out_dir") else None
        return cls(token=token, **d)


class Progress:
    """``==> enroll: [n/m] what`` on stderr and the step's time; quiet=True prints nothing."""

    def __init__(self, quiet: bool = False, stream: Any = None) -> None:
        self.quiet = quiet
        self.stream = stream or sys.stderr
        self.times: dict[str, float] = {}

    @contextmanager
    def step(self, n: int, key: str, what: str) -> Iterator[None]:
        if not self.quiet:
            print(f"==> enroll: [{n}/{TOTAL}] {what}", file=self.stream, flush=True)
        t0 = time.perf_counter()
        try:
            yield
        except FnError:
            took = time.perf_counter() - t0
            if not self.quiet:
                print(
                    f"enroll: step [{n}/{TOTAL}] '{what}' failed after {took:.1f}s",
                    file=self.stream,
                    flush=True,
                )
            raise
        took = time.perf_counter() - t0
        self.times[key] = round(took * 1000.0, 1)
        if not self.quiet:
            print(f"    done in {took:.2f}s", file=self.stream, flush=True)

    def say(self, text: str) -> None:
        if not self.quiet:
            print(text, file=self.stream, flush=True)


def _state() -> Path:
    from meshagents.state import state_dir

    return state_dir()


def call(fid: str, **kw: Any) -> Any:
    from meshagents.runtime.api import call

    return call(fid, caller=CALLER, **kw)


def _own_tunnel(opts: Options, plat: str) -> bool:
    return not (opts.wg_config_only if opts.wg_config_only is not None else plat == "termux")


def check_device(opts: Options) -> tuple[precheck.Facts, ServiceKind, bool]:
    """Step 1: the facts, the service kind and whether the tunnel is ours; raises PrecheckFailed."""
    from meshagents.trust import tokens

    tok = tokens.decode(opts.token)
    base = (opts.hub_url or tok.hub_endpoint).rstrip("/")
    state = _state()
    plat = probe.platform()
    own = _own_tunnel(opts, plat)
    dirs = precheck.target_dirs(state, opts.config_dir if own else None)
    facts = probe.gather(hub_base=base, dirs=dirs, interface=opts.interface, own_tunnel=own)
    kind = opts.service or precheck.default_service(facts)
    needs = precheck.Needs(
        token_issued_at=tok.issued_at,
        token_expires_at=tok.expires_at,
        service=kind,
        sandbox_weak=opts.sandbox_weak or plat == "termux",
        own_tunnel=own,
    )
    problems = precheck.check(facts, needs)
    if problems:
        lines = "; ".join(f"{p.code}: {p.message} (fix: {p.fix})" for p in problems)
        raise PrecheckFailed(
            problems[0].code, f"{lines}. The token was not used.", problems=[p.to_json() for p in problems]
        )
    return facts, kind, own


#: imported in a background thread from the start, while the main one waits on the pre-checks'
#: subprocesses (the bubblewrap probe, ``ip link``) and HTTP, then on the hub's enrollment answer:
#: pyroute2 alone is ~150 ms of imports quiet (~0.5 s loaded), and enrollment is meant to take
#: <= 2 s in all (issue 19)
WARM_MODULES = (
    "pyroute2",
    "meshagents.wg.client",
    "meshagents.functions.wg.wg_client_install",
    "meshagents.functions.hub.hub_mesh_check",
    "meshagents.functions.enrollment.enrollment_submit",
    "meshagents.trust.sealing",
)


def _warm_up() -> None:
    import importlib
    import threading

    def work() -> None:
        for name in WARM_MODULES:
            try:
                importlib.import_module(name)
            except Exception:  # noqa: S112 - only a head start: the step that needs it will say why
                continue

    threading.Thread(target=work, name="enroll-warm-up", daemon=True).start()


def enroll(opts: Options, progress: Progress | None = None) -> dict[str, Any]:
    """A fresh enrollment with OPTS.token; see the module's docstring for the order."""
    progress = progress or Progress()
    state = _state()
    old = journal_mod.load(state)
    if old is not None and not old.complete():
        raise FnError(
            "enroll_unfinished",
            f"an enrollment of {old.device_name} is unfinished ({', '.join(old.pending())} left):"
            " run `meshagents enroll --resume`, or `meshagents leave --local` to drop it",
        )
    t0 = time.perf_counter()
    _warm_up()  # from here: the pre-checks mostly wait on subprocesses and the hub
    with progress.step(1, "precheck", "check this device (the token is not used yet)"):
        facts, kind, own = check_device(opts)
    from meshagents.trust import tokens

    tok = tokens.decode(opts.token)
    opts = dataclasses.replace(
        opts,
        service=kind,
        wg_config_only=not own,
        sandbox_weak=opts.sandbox_weak or facts.platform == "termux",
    )
    with progress.step(2, "device_key", "device key (signs audit checkpoints; made here)"):
        call("device_key_init")
    jr = journal_mod.Journal(
        token=opts.token, token_id=tok.token_id, device_name=tok.device_name, options=opts.to_json()
    )
    journal_mod.save(state, jr)
    out = _run_steps(jr, opts, state, progress)
    out["timings_ms"] = {**progress.times, "total": round((time.perf_counter() - t0) * 1000.0, 1)}
    return out


def resume(progress: Progress | None = None) -> dict[str, Any]:
    """Finish the enrollment the journal records (only the steps not yet done)."""
    progress = progress or Progress()
    state = _state()
    jr = journal_mod.load(state)
    if jr is None:
        raise FnError("nothing_to_resume", f"no enrollment journal in {journal_mod.path(state)}")
    if jr.complete():
        progress.say(f"enroll: {jr.device_name} is enrolled already; nothing to resume")
        return dict(jr.result)
    opts = Options.from_json(jr.token, jr.options)
    _warm_up()
    progress.say(f"enroll: resuming {jr.device_name}: {', '.join(jr.pending())} left")
    return _run_steps(jr, opts, state, progress)


def _record(state: Path, jr: journal_mod.Journal, step: str, **result: Any) -> None:
    jr.done.append(step)
    jr.result.update(result)
    jr.failed = None
    journal_mod.save(state, jr)


def _guarded(state: Path, jr: journal_mod.Journal, step: str, fn: Callable[[], None]) -> None:
    try:
        fn()
    except FnError as exc:
        jr.failed = {"step": step, "error": exc.code, "message": exc.message}
        journal_mod.save(state, jr)
        exc.details.setdefault("resume", "meshagents enroll --resume")
        raise


def _run_steps(jr: journal_mod.Journal, opts: Options, state: Path, progress: Progress) -> dict[str, Any]:
    own = not opts.wg_config_only

    def submit() -> None:
        res = call("enrollment_submit", token=opts.token, hub_url=opts.hub_url, out_dir=opts.out_dir)
        _record(state, jr, "submit", **res)
        progress.say(f"enroll: manifest verified; mesh address {res['address']}")

    def wireguard() -> None:
        r = jr.result
        if own:
            installed = call(
                "wg_client_install",
                config_file=Path(r["client_config"]),
                private_key_file=Path(r["wg_private_key_file"]),
                interface=opts.interface,
                config_dir=opts.config_dir,
                systemd=False,
            )
            wg_unit = _wg_unit(opts) if opts.wg_unit and opts.service == "system" else None
            _record(
                state,
                jr,
                "wireguard",
                wg_method=installed["method"],
                wg_config=installed["config"],
                wg_unit=wg_unit,
            )
        else:
            conf, qr = _config_for_app(r, state)
            progress.say(qr)
            progress.say(
                f"enroll: import {conf} (or the QR above) in the WireGuard app and turn the tunnel on"
            )
            _record(state, jr, "wireguard", wg_method="app", wg_config=str(conf), wg_unit=None)

    def mesh() -> None:
        r = jr.result
        if not own:
            _record(state, jr, "mesh", mesh=None)
            return
        res = call(
            "hub_mesh_check",
            url=r["healthz_url"],
            interface=opts.interface,
            config_dir=opts.config_dir,
            timeout_s=opts.mesh_timeout_s,
        )
        _record(
            state, jr, "mesh", mesh={"elapsed_ms": res["elapsed_ms"], "handshake": res["latest_handshake"]}
        )

    def agent_config() -> None:
        r = jr.result
        room = None
        if r.get("agent_config"):
            path = Path(r["agent_config"])
            cfg = json.loads(path.read_text(encoding="utf-8"))
            if opts.sandbox_weak:
                cfg["sandbox"] = "weak"  # said in !help and on the dashboard as UNSANDBOXED
            tmp = path.with_name(f".{path.name}.tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
            os.replace(tmp, path)
            room = cfg.get("device_room")
        _record(state, jr, "agent_config", room=room, sandbox="weak" if opts.sandbox_weak else "bubblewrap")

    def start_service() -> None:
        r = jr.result
        kind: ServiceKind = opts.service or "none"
        if not r.get("agent_config"):
            _record(state, jr, "service", service={"kind": "none", "why": "the hub gave no Matrix account"})
            return
        spec = service.default_spec(Path(r["agent_config"]), state, r.get("wg_unit"))
        if kind == "system":
            service.ensure_user()
            spec = dataclasses.replace(spec, groups=service.existing_groups())
            service.hand_state_to_agent(state, keep_root=[Path(r["wg_private_key_file"])])
        done = service.install(spec, kind)
        _record(state, jr, "service", service=done)

    def agent_ready() -> None:
        r = jr.result
        svc = r.get("service") or {}
        kind: ServiceKind = svc.get("kind", "none")
        if not svc.get("started") or kind == "none":
            _record(state, jr, "ready", ready=None)
            return
        if jr.failed and jr.failed.get("step") == "ready":
            service.restart(kind)  # a resume after the agent did not come up: start it afresh
        got = ready_mod.wait_ready(
            kind, marker_mod.marker_for_config(Path(r["agent_config"])), timeout_s=opts.ready_timeout_s
        )
        progress.say(
            f"enroll: the agent is up (ready after {got['ready_after_s']}s, still {got['stable_s']}s later)"
        )
        _record(state, jr, "ready", ready=got)

    steps: list[tuple[int, str, str, Callable[[], None]]] = [
        (3, "submit", "enroll with the hub and verify the manifest (spends the token)", submit),
        (
            4,
            "wireguard",
            f"install the WireGuard client ({opts.interface})"
            if own
            else "write the WireGuard config for the app (file + QR)",
            wireguard,
        ),
        (5, "mesh", "handshake with the hub and /healthz over the mesh", mesh),
        (6, "agent_config", "write the agent's config", agent_config),
        (6, "service", f"install and start the agent's service ({opts.service})", start_service),
        (6, "ready", "wait until the agent is logged in, in its rooms, and stays up", agent_ready),
    ]
    for n, key, what, fn in steps:
        if key in jr.done:
            continue
        with progress.step(n, key, what):
            _guarded(state, jr, key, fn)
    room = jr.result.get("room")
    progress.say(
        f"enroll: on the mesh as {jr.result.get('device_id')} ({jr.result.get('address')})"
        + (f"; the device's room: {room}" if room else "")
    )
    return dict(jr.result)


def _wg_unit(opts: Options) -> str | None:
    """Hand the interface to the root unit that brings it up at boot: enabled and started now.

    The interface is up already (brought up directly, step 4); left like that, the oneshot unit
    would be 'failed' the first time something pulled it in (the agent's unit wants it) because
    ``wg-quick up`` finds the interface there. So it goes down and the unit brings it up: from
    then on the unit is what runs it, now and at every boot."""
    import shutil
    import subprocess

    from meshagents.wg.systemd import has_systemd, install_unit

    if not has_systemd() or not shutil.which("wg-quick"):
        return None
    conf = opts.config_dir / f"{opts.interface}.conf"
    if opts.config_dir == Path("/etc/wireguard"):
        name = f"wg-quick@{opts.interface}.service"
    else:
        name, _ = install_unit(opts.interface, conf)
    subprocess.run(["wg-quick", "down", str(conf)], capture_output=True, check=False)
    res = subprocess.run(["systemctl", "enable", "--now", name], capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise FnError("wg_unit_failed", f"systemctl enable --now {name}: {res.stderr.strip()[:300]}")
    return name


def _config_for_app(result: dict[str, Any], state: Path) -> tuple[Path, str]:
    """The wg-quick file with the device's key filled in, for the WireGuard app (0600), and its QR."""
    from meshagents.wg.client import PLACEHOLDER, qr_terminal, read_key_file

    text = Path(result["client_config"]).read_text(encoding="utf-8")
    key = read_key_file(Path(result["wg_private_key_file"]), "device private key")
    text = text.replace(PLACEHOLDER, key)
    out = Path(result["client_config"]).with_name("wg-app.conf")
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    return out, qr_terminal(text)
