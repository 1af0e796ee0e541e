"""wg_hub: the hub service — public enrollment, the operator API, live events, operations.db.

Modules:

    config     HubConfig (frozen) from a TOML/JSON/YAML file and flags
    store      operations.db (SQLite WAL, versioned migrations): wg_peers,
               wg_enrollment_tokens, device_audit(+checkpoints), e2e_runs, hub_log
    profiles   capability profiles (JSON files in meshagents/apps/wg_hub/profiles/)
    issue      the manifest a device gets (pure: profile + request + hub facts)
    enroll     the enrollment flow: token -> peer -> signed manifest (+ Matrix)
    audit_ingest  per-device audit chain continuity (pure check + store)
    events     the in-process event bus and the periodic handshake/bytes poller
    web        the two FastAPI apps: ``public_app`` (/enroll) and ``operator_app`` (/api)
    server     two uvicorn servers on separate sockets in one process
    __main__   ``fn app wg_hub --config FILE``

See docs/hub.md for the design and the reasons behind it.
"""
