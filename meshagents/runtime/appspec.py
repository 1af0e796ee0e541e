"""Read an app's ``app.md`` front matter and render its systemd unit.

Front matter is YAML between the first two ``---`` lines::

    ---
    name: wg_hub
    summary: ...
    uses_functions: [wg_peer_add, wg_status]
    service:
      exec: fn app wg_hub
      user: root
      restart: on-failure
      environment: {FN_STATE_DIR: /var/lib/meshagents}
      after: [network-online.target]
    e2e_checks:
      - id: golden
        test: tests/e2e/test_golden.py::test_golden
    ---
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from meshagents.errors import FnError

SERVICE_KEYS = ("exec", "user", "restart", "environment", "after")


@dataclass
class AppSpec:
    name: str
    path: Path
    front: dict[str, Any] = field(default_factory=dict)

    @property
    def uses_functions(self) -> list[str] | None:
        value = self.front.get("uses_functions")
        return None if value is None else [str(v) for v in value]

    @property
    def service(self) -> dict[str, Any] | None:
        svc = self.front.get("service")
        return svc if isinstance(svc, dict) else None

    @property
    def e2e_checks(self) -> list[dict[str, Any]]:
        return list(self.front.get("e2e_checks") or [])


def parse_front_matter(text: str) -> dict[str, Any]:
    lines = text.splitlines()
    if not lines or lines[0].strip() != "---":
        return {}
    try:
        end = next(i for i, line in enumerate(lines[1:], 1) if line.strip() == "---")
    except StopIteration as exc:
        raise FnError("app_spec_invalid", "front matter has no closing ---") from exc
    try:
        data = yaml.safe_load("\n".join(lines[1:end])) or {}
    except yaml.YAMLError as exc:
        raise FnError("app_spec_invalid", f"front matter is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise FnError("app_spec_invalid", "front matter must be a mapping")
    return data


def load_app(app_dir: Path) -> AppSpec:
    md = app_dir / "app.md"
    if not md.is_file():
        raise FnError("app_not_found", f"{md} does not exist")
    return AppSpec(name=app_dir.name, path=md, front=parse_front_matter(md.read_text(encoding="utf-8")))


def app_dirs(root: Path) -> list[Path]:
    apps = root / "meshagents" / "apps"
    if not apps.is_dir():
        return []
    return sorted(p for p in apps.iterdir() if p.is_dir() and (p / "app.md").is_file())


def missing_service_keys(service: dict[str, Any]) -> list[str]:
    return [k for k in SERVICE_KEYS if service.get(k) in (None, "", [], {})]


def render_unit(spec: AppSpec, project_dir: Path) -> str:
    """A systemd unit for the app's ``service:`` block."""
    svc = spec.service
    if svc is None:
        raise FnError("app_no_service", f"{spec.name}: app.md has no service: block")
    missing = missing_service_keys(svc)
    if missing:
        raise FnError("app_spec_invalid", f"{spec.name}: service block lacks {', '.join(missing)}")
    after = svc["after"] if isinstance(svc["after"], list) else [svc["after"]]
    exec_line = str(svc["exec"])
    if exec_line.startswith("fn "):
        exec_line = f"{project_dir}/fn {exec_line[3:]}"
    lines = [
        "[Unit]",
        f"Description={spec.front.get('summary', spec.name)}",
        f"After={' '.join(after)}",
        f"Wants={' '.join(after)}",
        "",
        "[Service]",
        "Type=simple",
        f"User={svc['user']}",
        f"WorkingDirectory={project_dir}",
        f"ExecStart={exec_line}",
        f"Restart={svc['restart']}",
        "RestartSec=2",
    ]
    for key, value in sorted(dict(svc["environment"]).items()):
        lines.append(f'Environment="{key}={value}"')
    for key in ("capabilities", "hardening"):
        for extra in svc.get(key) or []:
            lines.append(str(extra))
    lines += ["", "[Install]", "WantedBy=multi-user.target", ""]
    return "\n".join(lines)
