"""Export the trust models' JSON Schemas to docs/schemas/ (and check they are current).

    python -m meshagents.trust.schemas            # rewrite docs/schemas/*.json
    python -m meshagents.trust.schemas --check    # exit 1 if any file is stale

Public API: ``render_schemas() -> dict[filename, text]``, ``write_schemas(dir)``,
``stale_schemas(dir) -> list[filename]``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from pydantic import BaseModel

from meshagents.state import checkout_root
from meshagents.trust.models import (
    AuditEntry,
    Capability,
    Checkpoint,
    EnrollmentToken,
    Envelope,
    Manifest,
    RotationStatement,
)

MODELS: dict[str, type[BaseModel]] = {
    "manifest.json": Manifest,
    "capability.json": Capability,
    "enrollment_token.json": EnrollmentToken,
    "envelope.json": Envelope,
    "audit_entry.json": AuditEntry,
    "checkpoint.json": Checkpoint,
    "rotation_statement.json": RotationStatement,
}


def schema_dir() -> Path:
    """docs/schemas of the checkout (an installed copy has no docs/: ``needs_checkout``)."""
    return checkout_root("python -m meshagents.trust.schemas") / "docs" / "schemas"


def render_schemas() -> dict[str, str]:
    out = {}
    for name, model in MODELS.items():
        schema = model.model_json_schema()
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        schema["$id"] = f"https://meshagents.invalid/schemas/{name}"
        out[name] = json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    return out


def write_schemas(directory: Path | None = None) -> list[Path]:
    directory = directory or schema_dir()
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in render_schemas().items():
        path = directory / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def stale_schemas(directory: Path | None = None) -> list[str]:
    directory = directory or schema_dir()
    stale = []
    for name, text in render_schemas().items():
        path = directory / name
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            stale.append(name)
    return stale


def main(argv: list[str]) -> int:
    if "--check" in argv:
        stale = stale_schemas()
        for name in stale:
            print(f"stale: docs/schemas/{name} (run python -m meshagents.trust.schemas)")
        return 1 if stale else 0
    for path in write_schemas():
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
