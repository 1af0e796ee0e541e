"""Install from the hub, verifiably: /install serves the bundle, install.sh installs it in a
device namespace and enrolls — and refuses an edited or re-signed token before anything is
fetched, and a tampered manifest or a tampered file before anything is installed, each
without spending the token.

The bundle is the built wheel plus its [agent] dependencies for this machine's platform
(pip download, binary wheels only). install.sh runs with Debian's sh and python3, inside
the device's namespace, in a mount namespace where the checkout is hidden.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from nacl.signing import SigningKey

from meshagents.apps.wg_hub.install_bundle import Bundle, build_bundle, installer_sha256
from meshagents.trust import tokens
from tests.testbed.hub_rig import DeviceNs, HubRig, nsenter
from tests.testbed.wheel import ROOT, build_wheel, clean_env, hidden

pytestmark = [pytest.mark.integration, pytest.mark.root]
PLATFORM = "manylinux_2_28_x86_64"  # Debian 12 x86_64: glibc 2.36


@dataclass
class Served:
    rig: HubRig
    bundle: Bundle
    installer: Path  # install.sh as fetched by the device from the hub


@pytest.fixture(scope="module")
def served(hub_rig: HubRig, tmp_path_factory: pytest.TempPathFactory) -> Served:
    wheel = build_wheel(tmp_path_factory.mktemp("dist"))
    bundle = build_bundle(wheel, hub_rig.state / "wg_hub" / "install", PLATFORM, "3.11")
    dev_dir = tmp_path_factory.mktemp("fetch")
    installer = dev_dir / "install.sh"
    # what the operator's line does: fetch install.sh from the hub, check its hash
    r = hub_rig.public("GET", "/install/install.sh")
    assert r.status_code == 200
    installer.write_bytes(r.content)
    assert hashlib.sha256(r.content).hexdigest() == installer_sha256() == bundle.manifest["installer_sha256"]
    return Served(hub_rig, bundle, installer)


@pytest.fixture
def device(served: Served) -> Iterator[DeviceNs]:
    yield served.rig.new_device()


def _token(rig: HubRig, name: str, bundle: str | None) -> dict[str, object]:
    body: dict[str, object] = {"device_name": name, "ttl_s": 600, "profile": "minimal"}
    if bundle:
        body["bundle_sha256"] = bundle
    r = rig.operator("POST", "/api/tokens", json=body)
    assert r.status_code == 200, r.text
    return dict(r.json())


def _install(
    served: Served, dev: DeviceNs, token: str, target: Path, *pre: str
) -> subprocess.CompletedProcess[str]:
    argv = [*nsenter(dev.netns), *hidden(ROOT, [
        "sh", str(served.installer), *pre, token, "--dir", str(target), "--",
        "--hub", served.rig.public_url, "--interface", dev.interface,
        "--config-dir", str(dev.config_dir), "--no-systemd",
    ])]  # fmt: skip
    env = clean_env(FN_STATE_DIR=str(dev.state), HOME=str(dev.state), TMPDIR=str(dev.state))
    return subprocess.run(argv, cwd="/", env=env, capture_output=True, text=True, timeout=600, check=False)


def test_the_hub_refuses_a_token_for_a_bundle_it_does_not_have(served: Served) -> None:
    r = served.rig.operator("POST", "/api/tokens",
                            json={"device_name": "nobundle", "bundle_sha256": "0" * 64})  # fmt: skip
    assert r.status_code == 404 and r.json()["error"] == "bundle_unknown"


def test_a_token_without_a_bundle_is_refused_by_the_installer(served: Served, device: DeviceNs) -> None:
    tok = _token(served.rig, f"nob-{secrets.token_hex(2)}", None)
    target = device.state / "opt"
    out = _install(served, device, str(tok["token"]), target)
    assert out.returncode == 3, out.stderr
    assert "names no install bundle" in out.stderr and not target.exists()


def test_install_sh_refuses_tampering_then_installs_and_enrolls(served: Served, device: DeviceNs) -> None:
    rig, bundle = served.rig, served.bundle
    tok = _token(rig, f"inst-{secrets.token_hex(2)}", bundle.sha256)
    token = str(tok["token"])
    line = str(tok["install_command"])
    assert f"{rig.public_url}/install/install.sh" in line and installer_sha256() in line and token in line
    target = device.state / "opt"
    assert "--operator-key " in line  # the hub's line pins the operator's key

    # 0. the token edited on its way (another bundle the hub serves), or re-signed by another key:
    # refused before anything is fetched, nothing installed, the token not spent (step 3 uses it)
    _, payload, sig = token.split(".")
    body = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    body["bundle_sha256"] = hashlib.sha256(b"another bundle").hexdigest()
    raw = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    edited = f"mat1.{base64.urlsafe_b64encode(raw).rstrip(b'=').decode()}.{sig}"
    out = _install(served, device, edited, target)
    assert out.returncode == 3, out.stderr
    assert "REFUSED: the token signature does not match" in out.stderr and "[1/4]" not in out.stderr
    assert not target.exists()
    stranger = SigningKey.generate()
    _, resigned = tokens.create(
        stranger, device_name=str(body["device_name"]), hub_endpoint=str(body["hub_endpoint"]),
        bundle_sha256=bundle.sha256,
    )  # fmt: skip
    pin = line.split("--operator-key ", 1)[1].split()[0]
    out = _install(served, device, resigned, target, "--operator-key", pin)
    assert out.returncode == 3, out.stderr
    assert "not the pinned" in out.stderr and "[1/4]" not in out.stderr and not target.exists()

    # 1. the manifest changed on the hub (one byte): refused, nothing installed
    original = bundle.path.read_bytes()
    try:
        bundle.path.write_bytes(original.replace(b'"agent"', b'"agenT"'))
        out = _install(served, device, token, target)
    finally:
        bundle.path.write_bytes(original)
    assert out.returncode == 3, out.stderr
    assert "REFUSED: the bundle manifest's SHA-256" in out.stderr and not target.exists()

    # 2. one wheel changed on the hub: refused, nothing installed
    entry = next(f for f in bundle.manifest["files"] if str(f["name"]).startswith("pynacl-"))
    blob = rig.state / "wg_hub" / "install" / "files" / str(entry["sha256"])
    wheel_bytes = blob.read_bytes()
    try:
        blob.write_bytes(wheel_bytes[:-1] + bytes([wheel_bytes[-1] ^ 1]))
        out = _install(served, device, token, target)
    finally:
        blob.write_bytes(wheel_bytes)
    assert out.returncode == 3, out.stderr
    assert f"REFUSED: {entry['name']} has SHA-256" in out.stderr and not target.exists()
    assert not rig.device_has_interface(device)

    # 3. untouched: installed from the checked files only, then enrolled with the same token
    out = _install(served, device, token, target)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "[4/4] enroll" in out.stderr and rig.device_has_interface(device)
    enrolled = json.loads(out.stdout)
    assert enrolled["address"].startswith("10.42.0.")
    version = subprocess.run([str(target / "venv/bin/meshagents"), "--version"], capture_output=True,
                             text=True, check=True, cwd="/")  # fmt: skip
    assert version.stdout.startswith("meshagents 0.1.0")
    # the venv holds what the bundle listed, nothing fetched from elsewhere
    # (no pip in it to ask: install.sh removed pip and setuptools, which the agent never runs)
    dists = ("import json, importlib.metadata as m; "
             "print(json.dumps([d.metadata['Name'] for d in m.distributions()]))")
    freeze = subprocess.run([str(target / "venv/bin/python"), "-c", dists],
                            capture_output=True, text=True, check=True)  # fmt: skip
    installed = {str(n).lower().replace("_", "-") for n in json.loads(freeze.stdout)}
    assert not installed & {"pip", "setuptools"}, installed
    listed = {str(f["name"]).split("-")[0].lower().replace("_", "-") for f in bundle.manifest["files"]}
    assert installed <= listed, installed - listed
