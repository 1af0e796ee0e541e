"""Short request ids an operator can type on a phone: 6 characters of Crockford base32.

Crockford's alphabet leaves out I, L, O and U, and reading maps the look-alikes
back (``O`` -> ``0``, ``I``/``L`` -> ``1``), so ``!approve k3o9xl`` names request
``K309X1``; case and a dash in the middle never matter. 30 bits of randomness, and a
fresh id is drawn again when it collides with one still known.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Container

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
ID_LENGTH = 6
_LOOKALIKES = str.maketrans({"O": "0", "I": "1", "L": "1"})
_ID_RE = re.compile(rf"[{ALPHABET}]{{{ID_LENGTH}}}")


def new_request_id(
    taken: Container[str] = (), *, choice: Callable[[str], str] = secrets.choice
) -> str:
    """A fresh id not in ``taken``; ``choice`` is injectable for deterministic tests."""
    for _ in range(1000):
        rid = "".join(choice(ALPHABET) for _ in range(ID_LENGTH))
        if rid not in taken:
            return rid
    raise RuntimeError("no free request id after 1000 draws")  # 2^30 ids: only a broken `choice`


def normalize_request_id(text: str) -> str | None:
    """The canonical id for what an operator typed, or None when it cannot be one."""
    candidate = text.strip().upper().translate(_LOOKALIKES).replace("-", "")
    return candidate if _ID_RE.fullmatch(candidate) else None
