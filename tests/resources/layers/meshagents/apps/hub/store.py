from meshagents.wg import hub  # apps -> library: allowed

STORE = hub
