"""Every dependency of the ``agent`` extra has a binary wheel for Linux x86_64 and aarch64,
glibc and musl, for Python 3.11 (``pip download --only-binary :all: --platform ...``).

A complete resolution per platform is the proof (what the hub's install bundle does); when
one fails, each package of the x86_64 set is tried alone so the failure names the ones
with no wheel. Documented in docs/install.md ("Platforms").
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from meshagents.apps.wg_hub.install_bundle import download, platform_tags
from meshagents.errors import FnError
from tests.testbed.wheel import build_wheel

pytestmark = pytest.mark.integration

PLATFORMS = ["manylinux_2_28_x86_64", "manylinux_2_28_aarch64",
             "musllinux_1_2_x86_64", "musllinux_1_2_aarch64"]  # fmt: skip


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_wheel(tmp_path_factory.mktemp("dist"))


@pytest.fixture(scope="module")
def reference(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return download(wheel, tmp_path_factory.mktemp("x86"), "manylinux_2_17_x86_64", "3.11", "agent")


def _without_wheel(reference: list[Path], platform: str, where: Path) -> list[str]:
    missing = []
    for whl in reference:
        if whl.name.endswith("-none-any.whl") or whl.name.startswith("meshagents-"):
            continue
        name, version = whl.name.split("-")[:2]
        argv = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary", ":all:",
                "--implementation", "cp", "--python-version", "3.11", "-d", str(where), f"{name}=={version}"]
        argv += [a for tag in platform_tags(platform) for a in ("--platform", tag)]  # fmt: skip
        if subprocess.run(argv, capture_output=True, check=False).returncode != 0:
            missing.append(f"{name}=={version}")
    return missing


@pytest.mark.parametrize("platform", PLATFORMS)
def test_every_agent_dependency_has_a_wheel(
    platform: str, wheel: Path, reference: list[Path], tmp_path: Path
) -> None:
    binary = [w.name for w in reference if not w.name.endswith("-none-any.whl")]
    # matrix-nio 0.26's [e2e] uses vodozemac (Rust, abi3-like wheels), not python-olm (an sdist)
    assert any(n.startswith("vodozemac-") for n in binary), binary
    try:
        got = download(wheel, tmp_path / "wheels", platform, "3.11", "agent")
    except FnError as exc:
        missing = _without_wheel(reference, platform, tmp_path / "each")
        pytest.fail(f"{platform}: no wheel for {missing or 'a dependency'} ({exc.code})")
    names = {w.name.split("-")[0].lower() for w in got}
    assert {"vodozemac", "pynacl", "pycryptodome", "pydantic_core", "aiohttp"} <= names
    assert "cryptography" not in names, "a device carries one AES library: nio's pycryptodome"
