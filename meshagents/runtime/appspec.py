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


def render_unit(spec: AppSpec, project_dir: Path, *, launcher: str | None = None) -> str:
    """A systemd unit for the app's ``service:`` block.

    ``launcher`` replaces the leading ``fn`` of ``exec`` (default: the checkout's
    ``<project_dir>/fn``; a provisioned hub host uses its release launcher)."""
    svc = spec.service
    if svc is None:
        raise FnError("app_no_service", f"{spec.name}: app.md has no service: block")
    missing = missing_service_keys(svc)
    if missing:
        raise FnError("app_spec_invalid", f"{spec.name}: service block lacks {', '.join(missing)}")
    return render_service(
        str(spec.front.get("summary", spec.name)), svc, project_dir, launcher=launcher or f"{project_dir}/fn"
    )


def _as_list(value: Any) -> list[str]:
    if value in (None, "", []):
        return []
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def render_service(description: str, svc: dict[str, Any], working_dir: Path, *, launcher: str) -> str:
    """The unit text of one ``service:`` block (pure; the one renderer of every meshagents unit).

    Keys: ``exec`` (``fn ...`` runs through ``launcher``), ``user``, ``restart``,
    ``environment``, ``after`` (also wanted), optional ``group``, ``type`` (simple),
    ``requires``, ``before``, ``state_directory``, ``exec_stop``, ``remain_after_exit``,
    ``default_dependencies``, ``wanted_by`` (multi-user.target), and raw lines under
    ``unit_extra`` ([Unit]), ``capabilities`` and ``hardening`` ([Service])."""
    after = _as_list(svc.get("after"))
    exec_line = str(svc["exec"])
    if exec_line.startswith("fn "):
        exec_line = f"{launcher} {exec_line[3:]}"
    lines = ["[Unit]", f"Description={description}"]
    if svc.get("default_dependencies") is False:
        lines.append("DefaultDependencies=no")
    if after:
        lines += [f"After={' '.join(after)}", f"Wants={' '.join(after)}"]
    if svc.get("requires"):
        lines.append(f"Requires={' '.join(_as_list(svc['requires']))}")
    if svc.get("before"):
        lines.append(f"Before={' '.join(_as_list(svc['before']))}")
    lines += [str(extra) for extra in svc.get("unit_extra") or []]
    lines += ["", "[Service]", f"Type={svc.get('type', 'simple')}"]
    if svc.get("remain_after_exit"):
        lines.append("RemainAfterExit=yes")
    lines.append(f"User={svc['user']}")
    if svc.get("group"):
        lines.append(f"Group={svc['group']}")
    lines += [f"WorkingDirectory={svc.get('working_directory', working_dir)}", f"ExecStart={exec_line}"]
    if svc.get("exec_stop"):
        lines.append(f"ExecStop={svc['exec_stop']}")
    if str(svc.get("restart", "no")) != "no":
        lines += [f"Restart={svc['restart']}", "RestartSec=2"]
    if svc.get("state_directory"):
        lines += [f"StateDirectory={svc['state_directory']}", "StateDirectoryMode=0700"]
    for key, value in sorted(dict(svc.get("environment") or {}).items()):
        lines.append(f'Environment="{key}={value}"')
    for key in ("capabilities", "hardening"):
        for extra in svc.get(key) or []:
            lines.append(str(extra))
    lines += ["", "[Install]", f"WantedBy={svc.get('wanted_by', 'multi-user.target')}", ""]
    return "\n".join(lines)
