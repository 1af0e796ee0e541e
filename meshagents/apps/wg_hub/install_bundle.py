"""The install bundle the hub serves at ``/install``: the project's wheel and the agent's
dependency wheels for one device platform, listed with their SHA-256 in a manifest.

A device installs with no checkout and no package index: ``install.sh`` first checks the
token's structure and its operator's ed25519 signature (pure-stdlib Python inside the
script; pinned to the operator's key when the line passes ``--operator-key``), then fetches the
manifest named by the SHA-256 in its enrollment token,
checks the manifest's own hash, then every file against the manifest, and only then makes
a venv and ``pip install --no-index``. Everything is addressed by its hash
(``/install/bundles/<sha256>.json``, ``/install/files/<sha256>``), so the token names exactly
one bundle and a rebuilt wheel of the same name cannot stand in for an older one.

Layout under the hub's ``install_dir`` (default ``<hub state>/install``)::

    wheels/<platform>-cp<ver>/*.whl     # what pip downloaded for that platform, cached
    files/<sha256>                      # the bundles' files by content (hard links)
    bundles/<sha256>.json               # manifests, by the SHA-256 of their bytes
    index.json                          # {"<project wheel sha>:<platform>:<ver>": "<sha256>"}

    python -m meshagents.apps.wg_hub.install_bundle --wheel dist/meshagents-*.whl \\
        --platform manylinux_2_28_x86_64 --python-version 3.11 [--install-dir DIR]

Public API: ``build_bundle(...) -> Bundle``, ``manifest_bytes(...)``, ``BundleStore(dir)``
(``.manifest(sha) / .file(sha)``), ``installer_text()``, ``sha256_file(path)``.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

import click

from meshagents.errors import FnError

MANIFEST_TYPE = "meshagents.install_bundle.v1"
HEX64 = re.compile(r"^[0-9a-f]{64}$")
WHEEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,200}\.whl$")
PLATFORM = re.compile(r"^(manylinux2014|manylinux_2_\d+|musllinux_1_\d+)_(x86_64|aarch64|armv7l)$")
PY_VERSION = re.compile(r"^3\.\d{1,2}$")


@dataclass(frozen=True)
class Bundle:
    sha256: str
    path: Path
    manifest: dict[str, Any]


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def installer_text() -> str:
    """install.sh as shipped inside the package (the hub serves these exact bytes)."""
    return files("meshagents.apps.wg_hub").joinpath("install.sh").read_text(encoding="utf-8")


def installer_sha256() -> str:
    return hashlib.sha256(installer_text().encode()).hexdigest()


def manifest_bytes(project: str, extra: str, platform: str, python: str, wheels: list[Path]) -> bytes:
    """The manifest: sorted keys, one file per line-free JSON; its SHA-256 goes into tokens."""
    entries = [{"name": p.name, "sha256": sha256_file(p), "size": p.stat().st_size} for p in wheels]
    body = {
        "type": MANIFEST_TYPE,
        "project": project,
        "extra": extra,
        "platform": platform,
        "python": python,
        "installer_sha256": installer_sha256(),
        "files": sorted(entries, key=lambda e: str(e["name"])),
    }
    return (json.dumps(body, sort_keys=True, separators=(",", ":")) + "\n").encode()


def _check(platform: str, python: str, wheel: Path) -> None:
    if not PLATFORM.match(platform):
        raise FnError(
            "bad_usage", f"platform {platform!r}: want e.g. manylinux_2_28_x86_64 or musllinux_1_2_aarch64"
        )
    if not PY_VERSION.match(python):
        raise FnError("bad_usage", f"python version {python!r}: want e.g. 3.11")
    if not wheel.is_file() or not WHEEL_NAME.match(wheel.name) or not wheel.name.startswith("meshagents-"):
        raise FnError("bad_usage", f"{wheel} is not the project's wheel (./fn dist builds it)")


def platform_tags(platform: str) -> list[str]:
    """The tags a device of ``platform`` accepts: pip's --platform takes each literally, so
    manylinux_2_28 must also name 2_5..2_27 and the legacy aliases (most wheels are built for
    the oldest glibc they can)."""
    m = re.fullmatch(r"(manylinux|musllinux)_(\d+)_(\d+)_(.+)", platform)
    if m is None:  # manylinux2014_<arch>
        return [platform]
    kind, major, minor, arch = m.group(1), int(m.group(2)), int(m.group(3)), m.group(4)
    low = 5 if kind == "manylinux" else 0
    tags = [f"{kind}_{major}_{n}_{arch}" for n in range(minor, low - 1, -1)]
    if kind == "musllinux":
        return tags
    # the legacy aliases of manylinux_2_17 / 2_12 / 2_5
    legacy = [(17, "manylinux2014"), (12, "manylinux2010"), (5, "manylinux1")]
    return [*tags, *(f"{name}_{arch}" for glibc, name in legacy if minor >= glibc)]


def download(wheel: Path, target: Path, platform: str, python: str, extra: str) -> list[Path]:
    """pip download of ``wheel[extra]`` for the platform, binary wheels only, into ``target``."""
    target.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
            "--only-binary", ":all:", "--implementation", "cp", "--python-version", python,
            "--dest", str(target), f"{wheel}[{extra}]"]  # fmt: skip
    for tag in platform_tags(platform):
        argv += ["--platform", tag]
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise FnError(
            "bundle_download_failed",
            f"pip found no complete set of wheels for {platform} / Python {python}: "
            + proc.stderr.strip()[-800:],
        )
    return sorted(target.glob("*.whl"))


def build_bundle(
    wheel: Path, install_dir: Path, platform: str, python: str = "3.11", extra: str = "agent"
) -> Bundle:
    """The bundle for ``platform``; the wheels are downloaded once per project wheel and platform."""
    _check(platform, python, wheel)
    project_sha = sha256_file(wheel)
    key = f"{project_sha}:{platform}:{python}:{extra}"
    index_path = install_dir / "index.json"
    index: dict[str, str] = json.loads(index_path.read_text()) if index_path.exists() else {}
    bundles = install_dir / "bundles"
    if key in index and (bundles / f"{index[key]}.json").exists():
        path = bundles / f"{index[key]}.json"
        return Bundle(index[key], path, json.loads(path.read_bytes()))
    where = install_dir / "wheels" / f"{platform}-cp{python.replace('.', '')}"
    where.mkdir(parents=True, exist_ok=True)
    for old in where.glob("meshagents-*.whl"):  # an earlier build of the project
        old.unlink()
    got = download(wheel, where, platform, python, extra)
    data = manifest_bytes(wheel.name, extra, platform, python, got)
    sha = hashlib.sha256(data).hexdigest()
    store = install_dir / "files"
    store.mkdir(parents=True, exist_ok=True)
    for entry, src in zip(json.loads(data)["files"], sorted(got, key=lambda p: p.name), strict=True):
        dst = store / str(entry["sha256"])
        if not dst.exists():
            tmp = store / f".part-{entry['sha256']}"
            tmp.unlink(missing_ok=True)
            try:
                tmp.hardlink_to(src)
            except OSError:
                tmp.write_bytes(src.read_bytes())
            tmp.replace(dst)
    bundles.mkdir(parents=True, exist_ok=True)
    path = bundles / f"{sha}.json"
    _write_atomic(path, data)
    index[key] = sha
    _write_atomic(index_path, (json.dumps(index, indent=1, sort_keys=True) + "\n").encode())
    return Bundle(sha, path, json.loads(data))


def _write_atomic(path: Path, data: bytes) -> None:
    with tempfile.NamedTemporaryFile(dir=path.parent, delete=False, prefix=".part-") as fh:
        fh.write(data)
    Path(fh.name).replace(path)


class BundleStore:
    """What the hub serves from ``install_dir``: manifests by hash, wheels by name."""

    def __init__(self, install_dir: Path) -> None:
        self.root = install_dir

    def manifest(self, sha256: str) -> Path:
        if not HEX64.match(sha256):
            raise FnError(
                "bundle_unknown", "a bundle is named by the SHA-256 of its manifest (64 hex digits)"
            )
        path = self.root / "bundles" / f"{sha256}.json"
        if not path.is_file():
            raise FnError("bundle_unknown", f"this hub has no install bundle {sha256}")
        return path

    def file(self, sha256: str) -> Path:
        if not HEX64.match(sha256):
            raise FnError("bundle_unknown", "a file is named by its SHA-256 (64 hex digits)")
        path = self.root / "files" / sha256
        if not path.is_file():
            raise FnError("bundle_unknown", f"this hub has no file {sha256}")
        return path

    def exists(self, sha256: str) -> bool:
        try:
            self.manifest(sha256)
        except FnError:
            return False
        return True


def install_command(enroll_url: str, token: str, operator_key: str | None = None) -> str:
    """The operator's one line: fetch install.sh, check its SHA-256, run it with the token —
    and, given ``operator_key``, pin it: install.sh then refuses a token that key did not sign
    before it fetches anything (a token re-signed by someone else, with another bundle)."""
    pin = f"--operator-key {operator_key} " if operator_key else ""
    return (
        f"curl -fsSo install.sh {enroll_url}/install/install.sh && "
        f"echo '{installer_sha256()}  install.sh' | sha256sum -c --quiet && sh install.sh {pin}{token}"
    )


_PATH = click.Path(path_type=Path)
_SUMMARY = " ".join((__doc__ or "").split("\n\n")[0].split())


@click.command(name="python -m meshagents.apps.wg_hub.install_bundle", help=_SUMMARY)
@click.option("--wheel", type=_PATH, required=True, help="the project's wheel (./fn dist)")
@click.option("--platform", "platforms", multiple=True, required=True,
              help="e.g. manylinux_2_28_x86_64 (repeat)")  # fmt: skip
@click.option("--python-version", default="3.11", show_default=True)
@click.option("--extra", default="agent", show_default=True)
@click.option("--install-dir", type=_PATH, default=None, help="default: the hub's install_dir")
@click.option("--config", type=_PATH, default=None, help="the hub's config (for its install_dir)")
def main(
    wheel: Path, platforms: tuple[str, ...], python_version: str, extra: str, install_dir: Path | None,
    config: Path | None,
) -> None:
    """Build (or find) the install bundle of each platform; prints their SHA-256 as JSON."""
    from meshagents.apps.wg_hub.config import load

    where = install_dir or load(config).install_root
    try:
        out = {p: build_bundle(wheel, where, p, python_version, extra).sha256 for p in platforms}
    except FnError as exc:
        click.echo(json.dumps(exc.to_json()), err=True)
        sys.exit(exc.exit_code)
    click.echo(json.dumps({"install_dir": str(where), "bundles": out}, indent=2))


if __name__ == "__main__":
    main()
