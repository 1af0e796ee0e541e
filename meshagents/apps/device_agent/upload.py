"""``fs.write`` of a file the operator uploaded: the agent fetches it itself.

The bot signs ``{"path", "file": FileArg}`` (meshagents/matrix/attachments.py): the
mxc URL, key and IV from the operator's own ``m.file`` event, the ciphertext's hash,
and the plaintext's SHA-256 and size. The agent downloads the ciphertext from the
media repository (never the bot's copy), checks the ciphertext hash, decrypts, checks
size and SHA-256 against the *signed* values, and only then hands the bytes to the
ordinary ``fs.write`` handler — same path rule, same size cap (``texts.content``),
same approval. A refusal is the request's outcome (``error``) with a stable code:
``file_hash_mismatch``, ``file_size_mismatch``, ``file_too_large``,
``attachment_hash_mismatch``, ``attachment_invalid``, ``attachment_download_failed``,
``file_and_content`` (both given).

    wanted(verdict) -> bool
    await fetch(client, verdict) -> bytes | CapResult     # the checked bytes, or why not
"""

from __future__ import annotations

from meshagents.apps.device_agent.capabilities import fs_write
from meshagents.apps.device_agent.capabilities.base import CapResult
from meshagents.apps.device_agent.pipeline import Verdict
from meshagents.errors import FnError
from meshagents.matrix import attachments
from meshagents.matrix.client import MatrixClient


def wanted(verdict: Verdict) -> bool:
    env = verdict.envelope
    return env is not None and env.capability == "fs.write" and attachments.FILE_ARG in env.args


def _refuse(exc: FnError) -> CapResult:
    return CapResult("error", f"{exc.code}: {exc.message}\n", detail=exc.code)


async def fetch(client: MatrixClient, verdict: Verdict) -> bytes | CapResult:
    env, decision = verdict.envelope, verdict.decision
    assert env is not None and decision is not None
    try:
        if "content" in env.args:
            raise FnError("file_and_content", "fs.write takes either content or a file, not both")
        arg = attachments.parse_file_arg(env.args[attachments.FILE_ARG])
        cap = fs_write.max_bytes(decision)
        if arg.size > cap:
            raise FnError("file_too_large", f"{arg.name} is {arg.size} bytes; fs.write allows {cap}")
        data = await attachments.fetch_file(client, arg.file, max_bytes=cap)
        attachments.verify_plaintext(data, arg)
    except FnError as exc:
        return _refuse(exc)
    return data
