"""A production hub on a Debian 12 host (issue 24): what ``provision_wg_hub --host`` makes.

Pure parts render every file the host gets (``spec``: the flags and paths; ``units``:
systemd units through :func:`meshagents.runtime.appspec.render_service`; ``synapse_conf``;
``caddy``; ``firewall``; ``tomlmerge``: hand edits survive), the I/O parts apply them
idempotently (``files``, ``apply``) and run the lifecycle (``lifecycle``: status,
upgrade, backup, restore). The catalog functions ``hub_host_*`` are their entry points.
"""
