"""Synapse's production config for the embedded homeserver of a hub host (pure).

Differs from the test server (:mod:`meshagents.matrix.homeserver`) where production
needs it: PostgreSQL over the local socket (peer authentication as the Synapse user),
bcrypt 12 rounds, registration closed except the shared-secret API (the secret in a
file only the hub's group reads), no federation, media capped, logs to the journal.
Secrets (macaroon, form) live in ``secrets.yaml``, made once on the host, so this
file is the same bytes on every run.
"""

from __future__ import annotations

from typing import Any

import yaml

from meshagents.hubhost import spec as S


def homeserver_config(spec: S.HostSpec) -> dict[str, Any]:
    binds = ["127.0.0.1", spec.mesh_ip]
    public = f"https://{spec.domain}/" if spec.tls != "off" and spec.domain else f"{spec.device_homeserver}/"
    return {
        "server_name": spec.server_name,
        "public_baseurl": public,
        "serve_server_wellknown": False,
        "listeners": [
            {
                "port": spec.synapse_port,
                "bind_addresses": binds,
                "type": "http",
                "tls": False,
                "x_forwarded": spec.tls != "off",  # behind Caddy: the client address from X-Forwarded-For
                "resources": [{"names": ["client"], "compress": False}],
            }
        ],
        "database": {
            "name": "psycopg2",
            "args": {
                "user": S.SYNAPSE_USER,
                "database": S.SYNAPSE_DB,
                "host": "/var/run/postgresql",
                "cp_min": 2,
                "cp_max": 10,
            },
        },
        "log_config": str(S.SYNAPSE_LOG_CONF),
        "media_store_path": str(S.SYNAPSE_DATA / "media_store"),
        "signing_key_path": str(S.SYNAPSE_DATA / "signing.key"),
        "registration_shared_secret_path": str(S.REGISTRATION_SECRET),
        "enable_registration": False,
        "bcrypt_rounds": 12,
        "report_stats": False,
        "trusted_key_servers": [],
        "suppress_key_server_warning": True,
        "federation_domain_whitelist": [],  # no federation: the fleet's rooms stay on this server
        # ... so no federation sender either: Synapse would still look for remote servers in
        # the room of every event (bench_load's profile). Push, the user directory and room
        # stats stay on: Element users on phones need them (the test rig turns them off).
        "federation_sender_instances": [],
        "allow_public_rooms_over_federation": False,
        "allow_public_rooms_without_auth": False,
        "presence": {"enabled": False},
        "default_room_version": "11",
        "max_upload_size": f"{spec.max_upload_mb}M",
        "max_image_pixels": "32M",
        "url_preview_enabled": False,
        "enable_metrics": False,
        "limit_profile_requests_to_users_who_share_rooms": True,
        "require_auth_for_profile_requests": True,
        # the bot answers in many rooms at once; the default 0.2 msg/s would queue its replies
        "rc_message": {"per_second": 20, "burst_count": 100},
        "rc_joins": {"local": {"per_second": 10, "burst_count": 50}},
        "rc_invites": {
            "per_room": {"per_second": 10, "burst_count": 50},
            "per_user": {"per_second": 10, "burst_count": 50},
        },
    }


def log_config() -> dict[str, Any]:
    """Warnings and worse to stderr: systemd puts them in the journal."""
    return {
        "version": 1,
        "formatters": {"precise": {"format": "%(name)s %(levelname)s %(request)s %(message)s"}},
        "filters": {"context": {"()": "synapse.logging.context.LoggingContextFilter", "request": ""}},
        "handlers": {
            "console": {"class": "logging.StreamHandler", "formatter": "precise", "filters": ["context"]}
        },
        "root": {"level": "WARNING", "handlers": ["console"]},
        "disable_existing_loggers": False,
    }


def dump(data: dict[str, Any]) -> str:
    return (
        "# written by provision_wg_hub (meshagents/hubhost/synapse_conf.py): edit the flags, not this file\n"
        + (yaml.safe_dump(data, sort_keys=True, default_flow_style=False))
    )
