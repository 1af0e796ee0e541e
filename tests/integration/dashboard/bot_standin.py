"""A stand-in for the bot's control API (the contract in docs/dashboard.md), for the dashboard tests.

    python -m tests.integration.dashboard.bot_standin --port 8766 --state FILE.json --token-file FILE

``FILE.json`` holds ``{"approvals": [...], "devices": [...]}`` and is re-read on every
request, so a test changes what the "bot" says by rewriting it; a deny is written back.
Bearer token checked in constant time, errors as ``{"error", "message"}`` — the same
surface the real bot serves (apps/agents_and_robots), which was not ready when this
was written.
"""

from __future__ import annotations

import argparse
import hmac
import json
import os
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse


def build(state: Path, token: str) -> FastAPI:
    app = FastAPI()

    def load() -> dict[str, Any]:
        data: dict[str, Any] = json.loads(state.read_text())
        return data

    def authorised(request: Request) -> bool:
        given = request.headers.get("authorization", "").removeprefix("Bearer ").encode()
        return hmac.compare_digest(given, token.encode())

    def refuse() -> JSONResponse:
        return JSONResponse({"error": "unauthorized", "message": "bearer token required"}, 401)

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"state": "ok"}

    @app.get("/approvals", response_model=None)
    def approvals(request: Request) -> Any:
        if not authorised(request):
            return refuse()
        items = load()["approvals"]
        return sorted(items, key=lambda a: (a["state"] != "pending", a["created_at"]))

    @app.get("/devices", response_model=None)
    def devices(request: Request) -> Any:
        return load()["devices"] if authorised(request) else refuse()

    @app.post("/approvals/{approval_id}/deny", response_model=None)
    def deny(request: Request, approval_id: str) -> Any:
        if not authorised(request):
            return refuse()
        data = load()
        for a in data["approvals"]:
            if a["approval_id"] == approval_id:
                if a["state"] != "pending":
                    return JSONResponse({"error": "approval_decided", "message": a["state"]}, 409)
                a["state"] = "denied"
                a["decided_by"] = "dashboard"
                tmp = state.with_suffix(".tmp")
                tmp.write_text(json.dumps(data))
                os.replace(tmp, state)
                return {"state": "denied"}
        return JSONResponse({"error": "approval_not_found", "message": approval_id}, 404)

    return app


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--state", type=Path, required=True)
    p.add_argument("--token-file", type=Path, required=True)
    args = p.parse_args()
    token = args.token_file.read_text().strip()
    uvicorn.run(build(args.state, token), host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
