"""What the bot tells an operator session it does not trust (pure).

The answer goes out as a plain ``m.notice`` (``Reply.unencrypted``): the session holds
no room key from the bot (the bot shares keys only with cross-signed devices), so an
encrypted answer would read "Unable to decrypt" there. It carries nothing but the
refusal: which rule failed and what to do.
"""

from __future__ import annotations

VERIFY_HINT = (
    "Verify this session with your recovery key (Element: Settings → Sessions → "
    "Verify this session → use your recovery key; the demo prints it), then send the command again."
)

IDENTITY_HINT = (
    "Your cross-signing identity changed (a reset in Element?). The bot and the devices keep "
    "refusing the new master key until you confirm it with the operator key: "
    "`./fn operator trust-matrix-identity` (see docs/element.md, 'After a reset')."
)


def unverified_text(trust: str) -> tuple[str, str]:
    """(the alert's reason, the text for the session) for a trust-policy ``trust`` reason."""
    if trust == "master_key_changed":
        why = "the operator's cross-signing identity changed and is not confirmed yet"
        return why, f"refused, nothing was run: {why}. {IDENTITY_HINT}"
    if trust == "not_encrypted":
        why = "the message was not encrypted"
        return why, f"refused, nothing was run: {why}. Send commands in an encrypted room."
    why = f"the message came from a session that is not verified ({trust})"
    return why, f"refused, nothing was run: {why}. {VERIFY_HINT}"
