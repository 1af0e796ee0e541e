from meshagents.runtime.catalog import function  # functions -> runtime: allowed
from meshagents.wg import hub  # functions -> library: allowed


@function
def public_from_private(key: str) -> str:
    return hub.public_of(key)
