"""agents_and_robots: the Matrix bot that turns operator commands into signed envelopes.

Pure cores (no I/O, tested without a server):

- ``commands``   the command grammar: text -> ``Command`` | ``ParseError``; manifest pre-check
- ``approvals``  the approval state machine (pending, approved, denied, expired)
- ``confirm``    the two-step confirmation of ``!revoke``
- ``help``       ``!help`` rendering (plain text + HTML)
- ``alerts``     stale-device and replay alerts
- ``ids``        short, human-typeable request ids
- ``core``       one decision per room event -> actions for the Matrix shell

Thin store: ``dispatches`` (the bot's ``operations.db``). The Matrix shell that
wires these to the Matrix client base and the trust core is built on top.
"""
