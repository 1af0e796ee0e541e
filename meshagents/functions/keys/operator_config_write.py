"""operator_config_write: record, on the operator's machine, what every manifest must name.

``pipelines/provision_wg_hub`` calls it once, when it made the hub's controller key and
chose the approvers: from then on ``sign_pending_manifests`` and
``capability_manifest_reissue`` check the manifests a hub prepares against this file
(``meshagents.opconfig``), never against what the hub says later. An existing file that
says something else is kept (the operator's word wins) and reported as ``changed: false,
differs: [...]``; edit it by hand to change it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from meshagents import opconfig
from meshagents.fsutil import write_atomic
from meshagents.runtime.catalog import function


@function(id="operator_config_write", group="keys")
def operator_config_write(
    controllers: list[str], approvers: list[str] | None = None, path: Path | None = None
) -> dict[str, Any]:
    """Write the operator configuration (controllers, approvers) if there is none yet; report differences.

    Args:
        controllers: base64 ed25519 controller public key every manifest must name (repeat the option).
        approvers: Matrix id allowed to approve requests, e.g. @operator:hub.example.org (repeat).
        path: the file to write; default: $FN_OPERATOR_CONFIG, else <state>/operator/operator.toml.
    """
    target = path or opconfig.config_path()
    current = opconfig.load(target)
    wanted = {"controllers": tuple(controllers), "approvers": tuple(approvers or [])}
    if current.exists:
        differs = [k for k, v in wanted.items() if getattr(current, k) != v]
        return {"path": str(target), "changed": False, "differs": differs}
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    text = "".join(f"{k} = {json.dumps(list(v))}\n" for k, v in wanted.items())
    header = "# what every manifest this operator signs must name (written by provision_wg_hub)\n"
    write_atomic(target, header + text, fsync=False)
    return {"path": str(target), "changed": True, "differs": []}
