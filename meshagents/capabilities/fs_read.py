"""``fs.read``: one regular file under a prefix the manifest grants, size-capped."""

from __future__ import annotations

from meshagents.capabilities import fs_list
from meshagents.capabilities.spec import CapabilitySpec

SPEC = CapabilitySpec(
    name="fs.read",
    command="fs.read",
    usage="!fs.read <path>",
    summary="read a file (size-capped)",
    example="!fs.read /etc/hostname",
    parse=fs_list.parse,  # one absolute path, like fs.list
    render=fs_list.render,
    arguments={"path": "an absolute file path"},
    aliases=("cat",),
)
