"""Call-wrapper overhead: a catalog call through meshagents.runtime.api against the bare function.

    ./fn bench registry        (or: .venv/bin/python bench/bench_registry.py)

Prints the median per-call cost of the bare call, of the wrapper with telemetry
(one SQLite row per call), and the difference: the wrapper's overhead.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from collections.abc import Callable
from typing import Any

N = 3000


def per_call_us(fn: Callable[[], Any], n: int = N) -> float:
    samples = []
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        samples.append((time.perf_counter() - t0) / n * 1e6)
    return statistics.median(samples)


def main() -> None:
    os.environ["FN_STATE_DIR"] = tempfile.mkdtemp(prefix="fn-bench-")
    from meshagents.functions.wg.wg_keygen import wg_keygen
    from meshagents.runtime.api import call, invoke

    def noop() -> int:
        return 1

    bare_noop = per_call_us(noop)
    wrapped_noop = per_call_us(lambda: invoke("bench_noop", noop, {}, caller="bench"))
    bare_keygen = per_call_us(wg_keygen, 1000)
    wrapped_keygen = per_call_us(lambda: call("wg_keygen", caller="bench"), 1000)
    print(f"bare no-op call            {bare_noop:9.2f} us")
    print(f"wrapped no-op call         {wrapped_noop:9.2f} us   overhead {wrapped_noop - bare_noop:8.2f} us")
    print(f"bare wg_keygen             {bare_keygen:9.2f} us")
    print(
        f"call('wg_keygen')          {wrapped_keygen:9.2f} us"
        f"   overhead {wrapped_keygen - bare_keygen:8.2f} us"
        "  (lookup + telemetry row)"
    )
    overhead_ms = (wrapped_keygen - bare_keygen) / 1000
    verdict = "OK" if overhead_ms < 1 else "MISSED"
    print(f"wrapper overhead: {overhead_ms:.3f} ms per call (aim: < 1 ms) -> {verdict}")


if __name__ == "__main__":
    main()
