"""Every role's extra declares what its modules import (read from the source, no install).

Roles (pyproject.toml extras): ``agent`` runs on a device (the agent, enrollment, the
``meshagents`` command itself), ``hub`` the hub's apps, ``homeserver`` the Synapse side,
``docker`` the container functions, ``all`` the test bed. A module belongs to the first
role whose prefix it starts with; everything else is the agent's.
"""

from __future__ import annotations

import re
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

from meshagents.runtime.imports import canonical, closure, imports_of, modules, role_requirements

ROOT = Path(__file__).resolve().parents[3]
PYPROJECT = ROOT / "pyproject.toml"

ROLE_OF_PREFIX = [
    ("meshagents.testbed", "all"),  # the rig: Synapse, Docker, the hub, all at once
    ("meshagents.runtime.doctor", "all"),  # a checkout's own checks
    ("meshagents.matrix.homeserver", "homeserver"),
    ("meshagents.matrix.synapse_main", "homeserver"),  # the embedded homeserver's entry point
    ("meshagents.docker", "docker"),
    ("meshagents.functions.docker", "docker"),
    ("meshagents.functions.hub.hub_mesh_check", "agent"),  # the device checks the hub over the mesh
    ("meshagents.functions.hub", "hub"),
    ("meshagents.apps.wg_hub", "hub"),
    ("meshagents.apps.agents_and_robots", "hub"),
    ("meshagents.apps.agents_dashboard", "hub"),
    ("meshagents.hubctl", "hub"),
    ("meshagents.hubhost", "hub"),  # the production hub host's setup (Caddy, Synapse, units)
]

# What a device runs: the agent, the command line, and what enrollment calls.
AGENT_ENTRIES = ["meshagents.apps.device_agent", "meshagents.runtime.cli", "meshagents.runtime.api"]
# Lazy imports of the command line that only the checkout's commands take (demo, chat: the rig).
AGENT_SKIP_EDGES = [("meshagents.runtime.cli", "meshagents.testbed"),
                    ("meshagents.runtime.cli_vm", "meshagents.testbed"),  # ./fn vm: a checkout's test VM
                    ("meshagents.runtime.cli", "meshagents.runtime.doctor")]  # fmt: skip


def _role(module: str) -> str:
    for prefix, role in ROLE_OF_PREFIX:
        if module == prefix or module.startswith(prefix + "."):
            return role
    return "agent"


def _dists(top: str) -> set[str]:
    return {canonical(d) for d in packages_distributions().get(top, [])}


def _undeclared(mods: dict[str, Path], names: set[str], role: str) -> list[str]:
    declared = role_requirements(PYPROJECT, role)
    bad = []
    for name in sorted(names):
        for imp in imports_of(name, mods[name]):
            if not imp.third_party:
                continue
            dists = _dists(imp.top)
            if not dists:
                bad.append(f"{imp.importer}:{imp.line} imports {imp.top!r}, which no package here provides")
            elif not dists & declared:
                bad.append(f"{imp.importer}:{imp.line} imports {imp.top!r} ({', '.join(sorted(dists))}), "
                           f"not declared for [{role}]")  # fmt: skip
    return bad


def _device_functions() -> list[str]:
    """The catalog functions the device's enrollment pipeline runs."""
    text = (ROOT / "meshagents/pipelines/enroll_device").read_text(encoding="utf-8")
    ids = sorted(set(re.findall(r"fn_(?:run|local) ([a-z0-9_]+)", text)))
    assert ids, "enroll_device names no function"
    from meshagents.runtime.registry import load_catalog

    catalog = load_catalog(ROOT / "meshagents/registry.toml")
    return [catalog[i].module for i in ids]


@pytest.mark.unit
@pytest.mark.parametrize("role", ["agent", "hub", "homeserver", "docker", "all"])
def test_each_module_imports_only_what_its_role_declares(role: str) -> None:
    mods = modules(ROOT)
    mine = {m for m in mods if _role(m) == role}
    assert mine, f"no module has role {role}"
    # a hub runs the agent's modules too (it enrolls itself, runs functions): its extra covers theirs
    assert _undeclared(mods, mine, role) == []


@pytest.mark.unit
def test_what_a_device_runs_stays_within_the_agent_extra() -> None:
    mods = modules(ROOT)
    reach = closure([*AGENT_ENTRIES, *_device_functions()], mods, AGENT_SKIP_EDGES)
    foreign = sorted(m for m in reach if _role(m) != "agent")
    assert foreign == [], "a device module imports a module of another role"
    assert _undeclared(mods, reach, "agent") == []
    declared = role_requirements(PYPROJECT, "agent")
    for heavy in ("fastapi", "uvicorn", "matrix-synapse", "playwright", "docker", "jinja2"):
        assert heavy not in declared, f"[agent] must not pull {heavy}"


@pytest.mark.unit
def test_the_agent_closure_really_reads_the_device_modules() -> None:
    """The scan follows lazy imports (inside functions) and relative ones: the agent reaches
    the Matrix client and nio, and an import planted in a function would be seen."""
    mods = modules(ROOT)
    reach = closure(AGENT_ENTRIES, mods, AGENT_SKIP_EDGES)
    assert "meshagents.matrix.client" in reach and "meshagents.trust.manifest" in reach
    tops = {i.top for m in reach for i in imports_of(m, mods[m]) if i.third_party}
    assert {"nio", "httpx", "nacl", "pydantic", "click"} <= tops


@pytest.mark.unit
def test_a_planted_import_of_a_hub_package_is_caught(tmp_path: Path) -> None:
    pkg = tmp_path / "meshagents" / "apps" / "device_agent"
    pkg.mkdir(parents=True)
    (tmp_path / "meshagents" / "__init__.py").write_text("")
    (tmp_path / "meshagents" / "apps" / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "agent.py").write_text("def later():\n    from fastapi import FastAPI\n    return FastAPI\n")
    mods = modules(tmp_path)
    bad = _undeclared(mods, closure(["meshagents.apps.device_agent"], mods), "agent")
    assert len(bad) == 1 and "'fastapi'" in bad[0] and "not declared for [agent]" in bad[0]


@pytest.mark.unit
def test_role_requirements_expand_the_projects_own_extras() -> None:
    agent = role_requirements(PYPROJECT, "agent")
    assert {"pyroute2", "matrix-nio", "httpx", "aiohttp", "pynacl", "pydantic"} <= agent
    assert role_requirements(PYPROJECT, "all") >= agent | role_requirements(PYPROJECT, "hub")
