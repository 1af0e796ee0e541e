from meshagents.apps.hub.store import STORE  # one app importing another: refused
from meshagents.runtime.api import call  # apps -> runtime (call by id): allowed

BOT = (STORE, call)
