"""Run the project's own Python inside the VM: ship the remote bundle, then run scripts.

    guest = ship(vm)                          # probe + upload once (the bundle is cached in the guest)
    guest.python("import meshagents; print(1)").stdout
    guest.call("wg_status", interface="wg0")  # a catalog function, in the guest, as JSON

The bundle is the one ``fn run --host`` uses (``meshagents/remote/``: code plus wheels for
the guest's Python, built on this machine), so the guest needs no pip and no internet.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from meshagents.errors import FnError
from meshagents.remote import runner
from meshagents.remote.sshcmd import bundle_dir_expr
from meshagents.testbed.vm.machine import Vm


@contextmanager
def _ssh_config(vm: Vm) -> Iterator[None]:
    old = os.environ.get("FN_SSH_CONFIG")
    os.environ["FN_SSH_CONFIG"] = vm.ssh_config
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("FN_SSH_CONFIG", None)
        else:
            os.environ["FN_SSH_CONFIG"] = old


@dataclass(frozen=True)
class GuestPython:
    vm: Vm
    bundle_id: str
    interpreter: str

    def command(self, env: dict[str, str] | None = None) -> str:
        d = bundle_dir_expr(self.bundle_id)
        extra = " ".join(f"{k}={shlex.quote(v)}" for k, v in (env or {}).items())
        py = shlex.quote(self.interpreter)
        return f"cd {d} && FN_PROJECT_ROOT={d} PYTHONPATH={d}:{d}/site {extra} {py} -"

    def python(
        self, script: str, *, env: dict[str, str] | None = None, timeout: float = 600, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run ``script`` (on stdin) with the bundle's code and dependencies, as root."""
        return self.vm.ssh(self.command(env), input=script, timeout=timeout, check=check)

    def call(self, function_id: str, *, env: dict[str, str] | None = None, **kwargs: Any) -> Any:
        """A catalog function through ``meshagents.runtime.api.call`` in the guest."""
        script = (
            "import json, sys\nfrom meshagents.runtime.api import call\n"
            "from meshagents.errors import FnError\n"
            f"kw = json.loads({json.dumps(json.dumps(kwargs, default=str))})\n"
            "try:\n    out = call(%r, **kw)\nexcept FnError as e:\n"
            "    print(json.dumps({'__error__': e.to_json()})); sys.exit(0)\n"
            "print(json.dumps(out, default=str))\n" % function_id
        )
        proc = self.python(script, env=env)
        data = json.loads(proc.stdout.strip().splitlines()[-1])
        if isinstance(data, dict) and "__error__" in data:
            err = data["__error__"]
            code = str(err.pop("error"))  # the guest's own code, passed through
            raise FnError(code, err.pop("message"), **err)
        return data


def ship(vm: Vm) -> GuestPython:
    """Upload the bundle for the guest's Python if it is not there yet."""
    with _ssh_config(vm):
        opts = runner._options()
        platform = runner.probe(vm.ssh_alias, opts)
        bid = runner.ensure_bundle(vm.ssh_alias, opts, platform)
    return GuestPython(vm, bid, platform.python)
