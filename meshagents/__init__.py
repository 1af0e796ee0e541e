"""meshagents: run a fleet of your own machines from a Matrix chat.

The registry runtime lives here: the catalog marker (`catalog`), the indexer that
writes meshagents/registry.toml (`indexer`), the call wrapper with telemetry (`api`,
`telemetry`), the doctor checks (`doctor`) and the click CLI (`cli`).
"""

__version__ = "0.1.0"
