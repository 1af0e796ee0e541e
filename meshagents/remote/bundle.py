"""The bundle shipped to a remote host: project code + dependencies unpacked.

Dependencies are installed with pip into a ``site`` folder for the remote's Python
version and machine (``--only-binary=:all:`` with manylinux platform tags), on the
operator's machine, which reaches the package index; the remote needs no pip, no
venv module and no internet. Bundles are cached in the cache directory by id.
"""

from __future__ import annotations

import hashlib
import io
import subprocess
import sys
import tarfile
import tomllib
from dataclasses import dataclass
from pathlib import Path

from meshagents.errors import FnError
from meshagents.state import cache_dir, checkout_root

#: Extras whose functions make sense on a remote host (hub, devices).
REMOTE_EXTRAS = ("net", "docker", "hub")
CODE_DIRS = ("meshagents",)
CODE_FILES = ("meshagents/registry.toml", "pyproject.toml")


@dataclass(frozen=True)
class RemotePlatform:
    python: str
    major: int
    minor: int
    machine: str

    @property
    def tag(self) -> str:
        return f"cp{self.major}{self.minor}-{self.machine}"


def parse_probe(output: str) -> RemotePlatform | None:
    parts = output.strip().split()
    if len(parts) != 4:
        return None
    try:
        return RemotePlatform(parts[0], int(parts[1]), int(parts[2]), parts[3])
    except ValueError:
        return None


def requirements(root: Path) -> list[str]:
    """The core dependencies and those of REMOTE_EXTRAS, with the extras that name
    other extras of the project (``meshagents[net,matrix]``) expanded."""
    data = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    project = data["project"]
    extras: dict[str, list[str]] = project.get("optional-dependencies", {})
    reqs = list(project.get("dependencies", []))
    todo, seen = list(REMOTE_EXTRAS), set()
    while todo:
        extra = todo.pop()
        if extra in seen:
            continue
        seen.add(extra)
        for req in extras.get(extra, []):
            if req.startswith(project["name"] + "["):
                todo += [e.strip() for e in req.split("[", 1)[1].rstrip("]").split(",")]
            else:
                reqs.append(req)
    return sorted(set(reqs))


def code_files(root: Path) -> list[Path]:
    files = [root / f for f in CODE_FILES]
    for d in CODE_DIRS:
        files += sorted(p for p in (root / d).rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    return files


def code_digest(root: Path) -> str:
    h = hashlib.sha256()
    for path in code_files(root):
        h.update(path.relative_to(root).as_posix().encode() + b"\0")
        h.update(hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()


def bundle_id(root: Path, platform: RemotePlatform) -> str:
    h = hashlib.sha256()
    h.update(code_digest(root).encode())
    h.update("\n".join(requirements(root)).encode())
    h.update(platform.tag.encode())
    return h.hexdigest()[:16]


def manylinux_platforms(machine: str) -> list[str]:
    tags = [f"manylinux_2_{minor}_{machine}" for minor in range(17, 40)]
    return [*tags, f"manylinux2014_{machine}", f"linux_{machine}"]


def site_dir(root: Path, platform: RemotePlatform) -> Path:
    """A folder of unpacked dependencies for ``platform``, built once and cached."""
    reqs = requirements(root)
    key = hashlib.sha256(("\n".join(reqs) + platform.tag).encode()).hexdigest()[:12]
    target = cache_dir() / "remote" / f"site-{platform.tag}-{key}"
    target.parent.mkdir(parents=True, exist_ok=True)
    if (target / ".complete").exists():
        return target
    part = target.with_name(target.name + ".part")
    subprocess.run(["rm", "-rf", str(part)], check=True)
    argv = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
            "--target", str(part), "--only-binary=:all:", "--implementation", "cp",
            "--python-version", f"{platform.major}.{platform.minor}"]  # fmt: skip
    for plat in manylinux_platforms(platform.machine):
        argv += ["--platform", plat]
    proc = subprocess.run([*argv, *reqs], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise FnError(
            "remote_bundle_failed",
            f"could not gather wheels for {platform.tag}: {proc.stderr.strip()[-500:]}",
        )
    (part / ".complete").touch()
    subprocess.run(["rm", "-rf", str(target)], check=True)
    part.rename(target)
    return target


def build_archive(root: Path, site: Path) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=6) as tar:
        for path in code_files(root):
            tar.add(path, arcname=path.relative_to(root).as_posix(), recursive=False)
        tar.add(site, arcname="site", filter=lambda ti: None if ti.name.endswith(".complete") else ti)
    return buf.getvalue()


def make_bundle(platform: RemotePlatform, root: Path | None = None) -> tuple[str, bytes]:
    root = root or checkout_root("run --host")
    bid = bundle_id(root, platform)
    cache = cache_dir() / "remote" / f"bundle-{bid}.tar.gz"
    cache.parent.mkdir(parents=True, exist_ok=True)
    if cache.exists():
        return bid, cache.read_bytes()
    data = build_archive(root, site_dir(root, platform))
    tmp = cache.with_suffix(".part")
    tmp.write_bytes(data)
    tmp.rename(cache)
    return bid, data
