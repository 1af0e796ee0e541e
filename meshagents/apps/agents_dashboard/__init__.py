"""agents_dashboard: the operator's web cockpit — Mesh, Devices, Containers, Approvals, Audit.

Modules:

    config    DashConfig (frozen) and the operator token (key store or file)
    clients   HubClient (hub operator API, SSE) and BotClient (bot control API)
    views     pure view models: badges, ages, rates, the capability matrix, approvals, audit
    sessions  signed session cookie + per-session CSRF token
    live      follows the hub's events, polls the bot, marks panels for the pages
    web       the FastAPI app (login, cockpit, fragments over SSE, revoke, deny)
    server    sockets on the mesh address and loopback, uvicorn
    __main__  ``fn app agents_dashboard``

It talks to the hub and the bot over HTTP only and imports neither. See docs/dashboard.md.
"""
