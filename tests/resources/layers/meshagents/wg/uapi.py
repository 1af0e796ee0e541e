from ..functions.wg import wg_keygen  # relative, still library -> functions: refused

KEYGEN = wg_keygen
