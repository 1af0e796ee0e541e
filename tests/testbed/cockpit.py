"""The dashboard rig: a real hub (wg_hub on a real mesh), a bot stand-in, the dashboard, Chromium.

    rig = cockpit                     # module-scoped
    rig.hub                           # tests.testbed.hub_rig.HubRig (hub namespace, API)
    rig.url                           # http://127.0.0.1:8080 inside the hub namespace
    rig.set_bot(approvals=[...], devices=[...])   # what the bot stand-in answers from now on
    rig.shot(page, "name")            # screenshot into rig.artifacts (printed at start)
    page = browser_page               # a fresh Chromium page (empty profile), logged out

Everything the dashboard serves stays inside the hub's network namespace (its mesh
address and 127.0.0.1 there), so Chromium runs in that namespace too: Playwright starts
``/usr/bin/chromium`` through a two-line ``nsenter`` wrapper, which keeps the pipe it
talks over. The root namespace gets no address and no route.

The bot's control API is the bot's own ``ControlApi`` (aiohttp) over a stand-in bot
(``bot_standin.py``) whose approvals and device states come from a JSON file.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.testbed.host import ROOT, require_binary, require_root
from tests.testbed.hub_rig import HubRig, hub_rig_cm, in_netns
from tests.testbed.mesh import NETNS_DIR

DASH_PORT = 8080
BOT_PORT = 8766
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-quic",
]  # fmt: skip


@dataclass
class Cockpit:
    hub: HubRig
    workdir: Path
    artifacts: Path
    bot_state: Path
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    logs: list[Path] = field(default_factory=list)
    bot_proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{DASH_PORT}"

    def set_bot(self, approvals: list[dict[str, Any]], devices: list[dict[str, Any]]) -> None:
        tmp = self.bot_state.with_suffix(".tmp")
        tmp.write_text(json.dumps({"approvals": approvals, "devices": devices}))
        os.replace(tmp, self.bot_state)

    def bot(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.bot_state.read_text())
        return data

    def spawn(self, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        log_path = self.workdir / f"{name}.log"
        with log_path.open("ab") as log:
            proc = subprocess.Popen(
                ["nsenter", f"--net={NETNS_DIR / self.hub.hub_ns}", sys.executable, *argv],
                cwd=ROOT,
                env=self.hub.env(self.hub.state),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.procs.append(proc)
        self.logs.append(log_path)
        return proc

    def start_bot(self) -> subprocess.Popen[bytes]:
        token_file = self.workdir / "bot.token"
        token_file.write_text(self.hub.api_token)
        token_file.chmod(0o600)
        bot = self.spawn(
            "bot",
            ["-m", "tests.testbed.bot_standin", "--port", str(BOT_PORT),
             "--state", str(self.bot_state), "--token-file", str(token_file)],
        )  # fmt: skip
        self.wait_http(f"http://127.0.0.1:{BOT_PORT}/healthz", bot, "bot stand-in")
        self.bot_proc = bot
        return bot

    def stop_bot(self) -> None:
        if self.bot_proc is not None and self.bot_proc.poll() is None:
            self.bot_proc.terminate()
            self.bot_proc.wait(10)
        self.bot_proc = None

    def wait_http(self, url: str, proc: subprocess.Popen[bytes], what: str) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"{what} exited {proc.returncode}: {self.log_text()}")
            try:
                if in_netns(self.hub.hub_ns, httpx.get, url, timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{what} did not come up: {self.log_text()}")

    def dash(self, path: str) -> httpx.Response:
        return in_netns(self.hub.hub_ns, httpx.get, f"{self.url}{path}", timeout=5)

    def log_text(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in self.logs if p.exists())

    def shot(self, page: Any, name: str) -> Path:
        path = self.artifacts / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    def stop(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def chromium_wrapper(workdir: Path, netns: str) -> Path:
    path = workdir / "chromium-in-ns"
    path.write_text(f'#!/bin/sh\nexec nsenter --net={NETNS_DIR / netns} {CHROMIUM} "$@"\n')
    path.chmod(0o700)
    return path


@pytest.fixture(scope="module")
def cockpit(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cockpit]:
    require_root()
    require_binary("chromium")
    suffix = secrets.token_hex(3)
    workdir = tmp_path_factory.mktemp(f"dash{suffix}")
    state = workdir / "hub-state"
    state.mkdir(mode=0o700)
    base = Path(os.environ.get("FN_ARTIFACTS_DIR", Path(tempfile.gettempdir()) / "artifacts"))
    artifacts = base / f"dashboard-{suffix}"
    artifacts.mkdir(parents=True, exist_ok=True)
    print(f"\ndashboard screenshots: {artifacts}", flush=True)
    old = os.environ.get("FN_STATE_DIR")
    try:
        with hub_rig_cm(workdir, state) as hub:
            rig = Cockpit(hub=hub, workdir=workdir, artifacts=artifacts, bot_state=workdir / "bot.json")
            try:
                rig.set_bot([], [])
                rig.start_bot()
                # the token comes from the key store entry the hub made (FN_STATE_DIR = the hub's)
                dash = rig.spawn(
                    "dashboard",
                    ["-m", "meshagents.apps.agents_dashboard", "--hub-api", "http://127.0.0.1:8000",
                     "--bot-api", f"http://127.0.0.1:{BOT_PORT}", "--port", str(DASH_PORT),
                     "--stale-after-s", "30", "--bot-period-s", "0.5", "--tick-s", "2"],
                )  # fmt: skip
                rig.wait_http(f"{rig.url}/healthz", dash, "agents_dashboard")
                yield rig
            finally:
                rig.stop()
    finally:
        if old is None:
            os.environ.pop("FN_STATE_DIR", None)
        else:
            os.environ["FN_STATE_DIR"] = old


@pytest.fixture(scope="module")
def browser_context(cockpit: Cockpit) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    profile = cockpit.workdir / "chromium-profile"
    profile.mkdir()
    with sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(
            str(profile),
            executable_path=str(chromium_wrapper(cockpit.workdir, cockpit.hub.hub_ns)),
            args=CHROMIUM_ARGS,
            headless=True,
            viewport={"width": 1280, "height": 900},
        )
        try:
            yield ctx
        finally:
            ctx.close()


@pytest.fixture
def page(browser_context: Any) -> Iterator[Any]:
    browser_context.clear_cookies()
    pg = browser_context.new_page()
    try:
        yield pg
    finally:
        pg.close()
