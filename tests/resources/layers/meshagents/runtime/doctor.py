from meshagents.apps.hub import store  # runtime -> apps: refused

CHECK = store
