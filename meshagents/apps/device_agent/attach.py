"""What goes back to the room as an encrypted file instead of inline text (pure).

    attachment_cap(capability) -> int     # bytes; 0: never a file
    capture_cap(capability) -> int        # what a handler may keep: max(output cap, attachment cap)
    plan(outcome, notice_limit) -> Plan | None

A capability's ``attachment_cap_bytes`` (manifest, additive) bounds a file sent to the
room; absent, it is the capability's ``output_cap_bytes``, so a manifest signed before
the field existed never gets more output than it allowed — only a file instead of a
cut at the notice limit. An output (or an ``fs.read`` file) goes as a file when it is
binary (NUL or not UTF-8) or its JSON form does not fit the notice's half of the
event budget; a file over the cap is cut to the cap and says so.
"""

from __future__ import annotations

import json
import mimetypes
import posixpath
from dataclasses import dataclass
from typing import TYPE_CHECKING

from meshagents.matrix.attachments import is_binary, safe_name
from meshagents.trust.models import Capability

if TYPE_CHECKING:  # the pipeline imports this module
    from meshagents.apps.device_agent.pipeline import Outcome

FILE_BYTES = "file_bytes"  # CapResult.data key: an fs.read file's exact bytes
FILE_PATH = "file_path"


def attachment_cap(cap: Capability | None) -> int:
    if cap is None:
        return 0
    return cap.output_cap_bytes if cap.attachment_cap_bytes is None else cap.attachment_cap_bytes


def capture_cap(cap: Capability) -> int:
    return max(cap.output_cap_bytes, attachment_cap(cap))


@dataclass(frozen=True)
class Plan:
    name: str
    data: bytes
    mimetype: str
    total: int  # bytes before the cut at the cap
    binary: bool

    @property
    def cut(self) -> bool:
        return len(self.data) < self.total


def plan(outcome: Outcome, notice_limit: int) -> Plan | None:
    """The file to send for ``outcome``, or None when the notice can hold it."""
    cap = outcome.attachment_cap
    if cap <= 0:
        return None
    data = outcome.data or {}
    raw = data.get(FILE_BYTES)
    path = data.get(FILE_PATH)
    if isinstance(raw, bytes) and isinstance(path, str):
        name = safe_name(posixpath.basename(path))
        mimetype = mimetypes.guess_type(name)[0] or "application/octet-stream"
        binary = is_binary(raw)
        if not binary and len(json.dumps(raw.decode("utf-8"))) <= notice_limit // 2:
            return None
    else:
        if not outcome.output or len(json.dumps(outcome.output)) <= notice_limit // 2:
            return None
        raw = outcome.output.encode("utf-8")
        name = f"output-{safe_name(outcome.request_id or 'request')}.txt"
        mimetype = "text/plain"
        binary = False
    if not raw:
        return None
    return Plan(name, raw[:cap], mimetype, len(raw), binary)
