"""The agent follows operator-key rotation statements (docs/protocol.md §8): before the
statement a manifest signed by the new key is refused; after it, the new key's manifest
is accepted and one signed by the retired key is refused."""

from __future__ import annotations

import json
from typing import Any

import pytest
from nacl.signing import SigningKey

from meshagents.apps.device_agent.capabilities.base import Context
from meshagents.apps.device_agent.pipeline import Pipeline
from meshagents.trust import manifest as trust_manifest
from meshagents.trust.rotation import make_statement
from meshagents.trust.signing import public_b64
from tests.testbed.agent_rig import Rig

pytestmark = pytest.mark.unit

CTX = Context(sandbox=False)


def _signed(rig: Rig, key: SigningKey, serial: int) -> dict[str, Any]:
    body = json.loads(rig.manifest_path.read_text())
    body["serial"] = serial
    return trust_manifest.sign(body, key).model_dump(mode="json")


def _ls(rig: Rig, pipe: Pipeline) -> str:
    return pipe.process(rig.content("shell.exec.ls", {"argv": ["ls", str(rig.files)]}), None, CTX).status


def test_rotation_moves_trust_to_the_new_key(rig: Rig, pipe: Pipeline) -> None:
    assert _ls(rig, pipe) == "ok"
    new = SigningKey.generate()
    statement = make_statement(rig.operator, new, reason="yearly").model_dump(mode="json")
    by_new = _signed(rig, new, 2)

    # before the statement: the new key is nobody
    rig.manifest_path.write_text(json.dumps(by_new))
    verdict = pipe.check(rig.content("shell.exec.ls", {"argv": ["ls", str(rig.files)]}))
    assert verdict.status == "rejected_capability" and "manifest_invalid_signature" in verdict.reason
    rig.manifest_path.write_text(json.dumps(_signed(rig, rig.operator, 1)))

    # the statement with the re-signed manifest
    res = pipe.accept_rotation({"statement": statement, "manifest": by_new})
    assert res.status == "ok" and res.operator_key == public_b64(new) and res.serial == 2, res
    assert pipe.operator_key() == public_b64(new)
    assert _ls(rig, pipe) == "ok"
    assert json.loads(rig.config.rotations_path.read_text())[0]["new_key"] == public_b64(new)

    # a manifest signed by the retired key is refused, whatever its serial
    rig.manifest_path.write_text(json.dumps(_signed(rig, rig.operator, 9)))
    verdict = pipe.check(rig.content("shell.exec.ls", {"argv": ["ls", str(rig.files)]}))
    assert verdict.status == "rejected_capability" and "manifest_invalid_signature" in verdict.reason

    # the same statement again is harmless (an older manifest with it is not); a restart
    # keeps following it
    assert pipe.accept_rotation({"statement": statement, "manifest": None}).status == "ok"
    assert pipe.accept_rotation({"statement": statement, "manifest": _signed(rig, new, 1)}).status == (
        "manifest_serial_rollback"
    )
    rig.manifest_path.write_text(json.dumps(_signed(rig, new, 3)))
    again = Pipeline(rig.config)
    try:
        assert again.operator_key() == public_b64(new)
        assert again.manifest().serial == 3
    finally:
        again.close()


def test_bad_statements_change_nothing(rig: Rig, pipe: Pipeline) -> None:
    new, stranger = SigningKey.generate(), SigningKey.generate()
    good = make_statement(rig.operator, new).model_dump(mode="json")
    forged = {**good, "new_key": public_b64(stranger)}
    assert pipe.accept_rotation({"statement": forged}).status == "rotation_invalid"
    unchained = make_statement(stranger, new).model_dump(mode="json")
    assert pipe.accept_rotation({"statement": unchained}).status == "rotation_unchained"
    assert pipe.accept_rotation({"nothing": 1}).status == "rotation_invalid"
    # a manifest that does not verify under the new key: the statement is not kept either
    bad = pipe.accept_rotation({"statement": good, "manifest": _signed(rig, rig.operator, 5)})
    assert bad.status == "manifest_invalid_signature", bad
    assert not rig.config.rotations_path.exists()
    assert _ls(rig, pipe) == "ok"
