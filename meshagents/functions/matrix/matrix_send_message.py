"""matrix_send_message: send a text or notice (HTML, code, reply) to a room, encrypted where the room is."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from meshagents.runtime.catalog import function


@function(id="matrix_send_message", group="matrix", requires=["matrix", "network"])
def matrix_send_message(
    room: str,
    body: str,
    notice: bool = False,
    html: str | None = None,
    code: str | None = None,
    language: str | None = None,
    reply_to: str | None = None,
    credentials: Path | None = None,
) -> dict[str, Any]:
    """Send `body` to a room (id `!..` or alias `#..`) as m.text or m.notice, encrypted in encrypted rooms.

    `html` is the formatted body; `code` is appended as a code block (fenced in the
    plain body, `<pre><code>` in the HTML one); `reply_to` makes it a reply to that
    event id. Acts as the Matrix settings' `actor` account unless `credentials` names
    another account's credentials.json. Returns the event id, room id and whether it
    went encrypted.

    Args:
        room: the room: an id (!abc:server) or an alias (#dev-name:server).
        body: the plain-text body.
        notice: send as m.notice (what bots send) rather than m.text.
        html: formatted (HTML) body to send beside the plain one; default: none.
        code: text to append as a code block; default: none.
        language: language of the code block, for highlighting (e.g. python); default: none.
        reply_to: event id ($...) of the message to reply to; default: not a reply.
        credentials: credentials.json of another Matrix account to act as (homeserver, user_id, password);
            default: the Matrix settings' actor account.
    """
    from meshagents.matrix.ops import compose, run_as, send_message
    from meshagents.matrix.settings import load_settings

    settings = load_settings()
    plain, formatted = compose(body, code=code, language=language, html=html)
    return run_as(
        settings,
        lambda client: send_message(client, room, plain, notice=notice, html=formatted, reply_to=reply_to),
        credentials=credentials,
    )
