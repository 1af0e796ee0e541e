class FnError(Exception):
    pass
