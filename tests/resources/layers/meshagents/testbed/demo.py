from meshagents.apps.hub import store  # the test bed may read app stores: allowed


def run() -> None:
    print(store)
