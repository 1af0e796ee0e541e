"""A device's results as a test or bench hears them: the ``org.meshagents.result`` content
its answer carries (``bus.RESULT_KEY`` of the m.notice or of a live message's final edit)
and, from older agents, the separate ``RESULT_EVENT``: one callback for both."""

from __future__ import annotations

import dataclasses

from meshagents.bus import RESULT_EVENT, carried_result
from meshagents.matrix.client import Callback, Incoming, MatrixClient


def as_result(ev: Incoming) -> Incoming | None:
    """``ev`` as a result event (type RESULT_EVENT, content the result), or None."""
    if ev.type == RESULT_EVENT:
        return ev
    carried = carried_result(ev.content)
    return None if carried is None else dataclasses.replace(ev, type=RESULT_EVENT, content=carried)


def on_results(client: MatrixClient, callback: Callback) -> None:
    """Call ``callback`` with every result ``client`` sees (carried or separate)."""

    async def on_message(ev: Incoming) -> None:
        res = as_result(ev)
        if res is not None:
            await callback(res)

    client.on_message(on_message)
    client.on_custom_event(RESULT_EVENT, callback)
