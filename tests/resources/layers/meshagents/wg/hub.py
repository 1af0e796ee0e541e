from meshagents.errors import FnError


def public_of(key: str) -> str:
    from meshagents.functions.wg.wg_keygen import public_from_private  # library -> functions: refused

    if not key:
        raise FnError("bad")
    return public_from_private(key)
