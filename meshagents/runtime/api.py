"""The importable API: call catalog functions through the same wrapper as the CLI.

    from meshagents.runtime.api import call
    keys = call("wg_keygen", caller="wg_hub", preshared=True)

Every call is timed with ``perf_counter`` and recorded in telemetry (function id,
start, duration, success, error code, caller). ``KeyboardInterrupt`` passes through
unrecorded-as-error; any other exception is recorded and re-raised, unexpected ones
wrapped as ``FnError("internal_error")`` so callers see one error type.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from meshagents.errors import FnError
from meshagents.runtime import telemetry
from meshagents.runtime.registry import resolve


def default_caller() -> str:
    return os.environ.get("FN_CALLER", "api")


def invoke(
    function_id: str,
    fn: Callable[..., Any],
    kwargs: dict[str, Any],
    *,
    caller: str,
    host: str | None = None,
) -> Any:
    """Run ``fn(**kwargs)`` with timing and one telemetry row."""
    with telemetry.Timed(function_id, caller=caller, host=host):
        try:
            return fn(**kwargs)
        except (FnError, KeyboardInterrupt):
            raise
        except Exception as exc:
            raise FnError("internal_error", f"{type(exc).__name__}: {exc}") from exc

def call(function_id: str, /, *, caller: str | None = None, **kwargs: Any) -> Any:
    """Call catalog function ``function_id`` with keyword arguments."""
    fn = resolve(function_id)
    return invoke(function_id, fn, kwargs, caller=caller or default_caller())
