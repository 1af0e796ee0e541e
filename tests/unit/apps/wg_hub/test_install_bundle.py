"""The install bundle's manifest and the hub's /install routes (files made here, no pip)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from meshagents.apps.wg_hub import install_routes
from meshagents.apps.wg_hub.install_bundle import (
    MANIFEST_TYPE,
    BundleStore,
    install_command,
    installer_sha256,
    installer_text,
    manifest_bytes,
)
from meshagents.apps.wg_hub.web import _install_errors
from meshagents.errors import FnError

pytestmark = pytest.mark.unit


@dataclass
class Made:
    store: BundleStore
    sha: str
    files: dict[str, bytes]


@pytest.fixture
def made(tmp_path: Path) -> Made:
    wheels = tmp_path / "src"
    wheels.mkdir()
    blobs = {"meshagents-0.1.0-py3-none-any.whl": b"project", "pynacl-1.5.0-cp36-abi3-x.whl": b"nacl"}
    for name, blob in blobs.items():
        (wheels / name).write_bytes(blob)
    data = manifest_bytes("meshagents-0.1.0-py3-none-any.whl", "agent", "manylinux_2_28_x86_64", "3.11",
                          sorted(wheels.iterdir()))  # fmt: skip
    sha = hashlib.sha256(data).hexdigest()
    root = tmp_path / "install"
    (root / "bundles").mkdir(parents=True)
    (root / "files").mkdir()
    (root / "bundles" / f"{sha}.json").write_bytes(data)
    for blob in blobs.values():
        (root / "files" / hashlib.sha256(blob).hexdigest()).write_bytes(blob)
    return Made(BundleStore(root), sha, blobs)


def _client(store: BundleStore) -> TestClient:
    app = FastAPI()
    _install_errors(app)
    install_routes.register(app, store)
    return TestClient(app)


def test_the_manifest_lists_every_file_with_its_hash(made: Made) -> None:
    m = json.loads(made.store.manifest(made.sha).read_bytes())
    assert m["type"] == MANIFEST_TYPE and m["extra"] == "agent"
    assert m["installer_sha256"] == installer_sha256()
    assert {f["name"]: f["sha256"] for f in m["files"]} == {
        n: hashlib.sha256(b).hexdigest() for n, b in made.files.items()
    }


def test_the_hub_serves_install_sh_manifest_and_files(made: Made) -> None:
    c = _client(made.store)
    r = c.get("/install/install.sh")
    assert r.status_code == 200 and r.text == installer_text() and r.text.startswith("#!/bin/sh")
    r = c.get(f"/install/bundles/{made.sha}.json")
    assert r.status_code == 200 and hashlib.sha256(r.content).hexdigest() == made.sha
    for blob in made.files.values():
        r = c.get(f"/install/files/{hashlib.sha256(blob).hexdigest()}")
        assert r.status_code == 200 and r.content == blob


@pytest.mark.parametrize("path", ["/install/bundles/{zero}.json", "/install/files/{zero}"])
def test_unknown_hashes_are_404_bundle_unknown(made: Made, path: str) -> None:
    r = _client(made.store).get(path.format(zero="0" * 64))
    assert r.status_code == 404 and r.json()["error"] == "bundle_unknown"


@pytest.mark.parametrize("bad", ["..%2F..%2Fetc%2Fpasswd", "ABC", "0" * 63, "g" * 64])
def test_anything_but_a_hash_is_refused(made: Made, bad: str) -> None:
    c = _client(made.store)
    for path in (f"/install/bundles/{bad}.json", f"/install/files/{bad}"):
        assert c.get(path).status_code in (404, 422)
    with pytest.raises(FnError) as exc:
        made.store.file("../" + "0" * 61)
    assert exc.value.code == "bundle_unknown"


def test_the_operators_line_checks_the_installer_before_running_it() -> None:
    line = install_command("http://198.51.100.7:8443", "mat1.x.y")
    assert line.startswith("curl -fsSo install.sh http://198.51.100.7:8443/install/install.sh && ")
    assert f"echo '{installer_sha256()}  install.sh' | sha256sum -c --quiet && sh install.sh mat1.x.y" in line
    pinned = install_command("http://198.51.100.7:8443", "mat1.x.y", "K+ey/=")
    assert pinned.endswith("sh install.sh --operator-key K+ey/= mat1.x.y")
