"""The device agent: the program every device runs (see app.md and docs/device_agent.md).

Layout: ``config.py`` (frozen config from the state dir), ``pipeline.py`` (the pure-ish
core: manifest, envelope verification in ARCHITECTURE order, audit, capability run),
``capabilities/`` (one module per capability family), ``sandbox.py`` (bubblewrap or
the rlimit fallback), ``replies.py`` (Matrix contents), ``shipping.py`` (audit batches
to the hub), ``agent.py`` (the Matrix shell), ``__main__.py`` (entry point).
"""
