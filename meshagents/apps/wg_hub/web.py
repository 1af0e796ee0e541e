"""The two HTTP apps of the hub, served on separate sockets (see server.py).

    public_app(hub)    POST /enroll, POST /enroll/refused, GET /healthz   (underlay address)
    operator_app(hub, token)   GET /healthz, /api/* (bearer token)       (mesh address, loopback)

The operator routes do not exist on the public socket at all: a request for
``/api/peers`` there is a 404 from an app that has no such route, whatever the client
address. ``POST /api/audit/{device_id}`` takes no bearer token: the batch is
authenticated by the device-key signature on its checkpoint.

Errors are JSON ``{"error": code, "message": ..., **details}``; codes map to statuses
in ``STATUS``. Malformed input is a 422 with ``fields`` (location and message per
problem), never a 500.
"""

from __future__ import annotations

import gc
import hmac
import json
import logging
import re
from typing import Annotated, Any

from fastapi import Body, Depends, FastAPI, Header, Path, Query, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field
from sse_starlette.sse import EventSourceResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from meshagents.apps.wg_hub import install_routes
from meshagents.apps.wg_hub.enroll import Hub
from meshagents.errors import FnError
from meshagents.trust.models import DEVICE_NAME_PATTERN, NAME_PATTERN
from meshagents.trust.signing import TYPE_LEAVE

log = logging.getLogger("wg_hub")

STATUS: dict[str, int] = {
    "token_invalid": 401,
    "token_expired": 401,
    "token_used": 401,
    "unauthorized": 401,
    "audit_signature_invalid": 401,
    "leave_signature_invalid": 401,
    "leave_expired": 401,
    "leave_invalid": 422,
    "peer_unknown": 404,
    "bundle_unknown": 404,
    "device_unknown": 404,
    "enrollment_unknown": 404,
    "device_exists": 409,
    "name_taken": 409,
    "peer_conflict": 409,
    "peer_revoked": 409,
    "audit_chain_broken": 409,
    "manifest_mismatch": 409,
    "manifest_serial_rollback": 409,
    "manifest_invalid_signature": 422,
    "manifest_invalid": 422,
    "manifest_expired": 422,
    "invalid_key": 422,
    "invalid_name": 422,
    "profile_unknown": 422,
    "audit_invalid": 422,
    "bad_usage": 422,
    "canonical_invalid": 422,
    "wg_interface_missing": 503,
    "hub_not_configured": 503,
    "key_missing": 503,
}

KEY_PATTERN = r"^[A-Za-z0-9+/]{43}=$"
BEARER = HTTPBearer(auto_error=False)  # module level: annotations are resolved in module globals
DEVICE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,127}$"
DEVICE_ID = Annotated[str, Path(pattern=DEVICE_ID_PATTERN)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EnrollRequest(_Strict):
    token: str = Field(min_length=1, max_length=4096, description="the compact enrollment token (mat1....)")
    wg_public_key: str = Field(pattern=KEY_PATTERN, description="the device's WireGuard public key (base64)")
    device_key: str = Field(pattern=KEY_PATTERN, description="the device's ed25519 public key (base64)")


class RefusedRequest(_Strict):
    token: str = Field(min_length=1, max_length=4096)
    reason: str = Field(default="manifest_invalid_signature", max_length=500)


class LeaveRequest(_Strict):
    """meshagents.trust.leave's request, described so the schema says what the hub accepts;
    the signature and the clock are checked by trust.leave.check."""

    type: str = Field(pattern=f"^{re.escape(TYPE_LEAVE)}$")
    device_id: str = Field(pattern=DEVICE_ID_PATTERN)
    issued_at: int = Field(strict=True, description="unix seconds; within 300 s of the hub's clock")
    nonce: str = Field(min_length=1, max_length=256)
    signature: str = Field(min_length=1, max_length=256, description="ed25519 by the device key")


class ManifestRequest(_Strict):
    token: str = Field(min_length=1, max_length=4096)


class PeerAddRequest(_Strict):
    public_key: str = Field(pattern=KEY_PATTERN)
    name: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
    preshared: bool = False


class TokenRequest(_Strict):
    device_name: str = Field(pattern=DEVICE_NAME_PATTERN)
    profile: str = Field(default="default", pattern=NAME_PATTERN)
    ttl_s: int = Field(default=600, ge=1, le=7 * 86400)
    # the install bundle (its manifest's SHA-256) the device's install.sh must get: see /install
    bundle_sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")


def _error(exc: FnError) -> JSONResponse:
    status = STATUS.get(exc.code, 500)
    if status == 500:
        log.error("internal error %s: %s", exc.code, exc.message)
    return JSONResponse(exc.to_json(), status_code=status)


MAX_BODY = 8 * 1024 * 1024
_TOO_LARGE = {"error": "body_too_large", "message": f"at most {MAX_BODY} bytes"}


class BodyCap:
    """A cap on request bodies, counted while they stream in (pure ASGI middleware).

    A declared ``Content-Length`` over the cap is answered 413 before any body is read;
    a chunked body (no length) is counted message by message, and the first one past
    the cap ends the read with 413, so a 24 MiB upload costs the hub at most the cap.
    """

    def __init__(self, app: Any, limit: int = MAX_BODY) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            await JSONResponse(_TOO_LARGE, 413)(scope, receive, send)
            return
        seen = 0

        async def capped() -> Any:
            nonlocal seen
            message = await receive()
            if message.get("type") == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    # FastAPI re-raises an HTTPException met while reading the body, and
                    # the handler below turns this one into the JSON error shape.
                    raise StarletteHTTPException(413, "body_too_large")
            return message

        await self.app(scope, capped, send)


def _install_errors(app: FastAPI) -> None:
    app.add_middleware(BodyCap)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Any:
        if exc.status_code == 413:
            return JSONResponse(_TOO_LARGE, 413)
        return await http_exception_handler(request, exc)

    @app.exception_handler(FnError)
    async def fn_error(_: Request, exc: FnError) -> JSONResponse:
        return _error(exc)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        fields = [
            {
                "loc": [str(p) for p in e.get("loc", ())],
                "msg": str(e.get("msg", "")),
                "type": str(e.get("type", "")),
            }
            for e in exc.errors()
        ]
        return JSONResponse(
            {
                "error": "invalid_request",
                "message": "the request does not match the schema",
                "fields": fields,
            },
            status_code=422,
        )

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error")
        return JSONResponse({"error": "internal_error", "message": type(exc).__name__}, status_code=500)


def public_app(hub: Hub) -> FastAPI:
    app = FastAPI(title="wg_hub public", version="1", docs_url=None, redoc_url=None)
    _install_errors(app)

    @app.get("/healthz")
    def healthz() -> dict[str, Any]:
        return {"ok": True, "service": "wg_hub", "listener": "public"}

    @app.post("/enroll")
    def enroll(req: EnrollRequest) -> dict[str, Any]:
        """Join the mesh with a one-use token; answers the WireGuard settings and the signed manifest."""
        return hub.enroll(req.token, req.wg_public_key, req.device_key)

    @app.post("/enroll/refused")
    def refused(req: RefusedRequest) -> dict[str, Any]:
        """The device refused the manifest it got (bad signature): the hub removes the peer."""
        return hub.refused(req.token, req.reason)

    @app.post("/enroll/leave")
    def leave(req: LeaveRequest) -> dict[str, Any]:
        """The device leaves the mesh: a request signed by its own device key revokes it. On this
        listener, not over the mesh, because the revoke takes the mesh path away before the answer."""
        return hub.leave(req.device_id, req.model_dump())

    @app.post("/enroll/manifest")
    def manifest(req: ManifestRequest) -> JSONResponse:
        """Two-step signing: the device's manifest once the operator signed it (202 while it waits)."""
        ready, answer = hub.manifest_for(req.token)
        return JSONResponse(answer, status_code=200 if ready else 202)

    install_routes.register(app, hub.bundles)
    return app


def operator_app(hub: Hub, api_token: str) -> FastAPI:
    app = FastAPI(title="wg_hub operator", version="1")
    _install_errors(app)

    def auth(cred: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)]) -> None:
        given = cred.credentials.encode() if cred is not None else b""
        # compare_digest: the time taken does not tell how much of a guess was right
        if not hmac.compare_digest(given, api_token.encode()):
            raise FnError("unauthorized", "operator bearer token required")

    guarded = [Depends(auth)]

    @app.get("/healthz")
    def healthz() -> dict[str, Any]:
        return {
            "ok": True,
            "service": "wg_hub",
            "listener": "operator",
            "mesh_address": hub.facts.mesh_address,
        }

    @app.get("/api/peers", dependencies=guarded)
    def list_peers() -> Response:
        # Encoded here, as JSONResponse would (same bytes): FastAPI's jsonable_encoder walks
        # a returned dict value by value in Python, most of the answer's time at 10,000 peers
        # (3 MB of rows and manifests).
        enabled = gc.isenabled()
        gc.disable()  # ~200,000 acyclic objects built and dropped: no collector passes meanwhile
        try:
            body = json.dumps({"peers": hub.peers()}, ensure_ascii=False, allow_nan=False,
                              separators=(",", ":")).encode("utf-8")  # fmt: skip
        finally:
            if enabled:
                gc.enable()
        return Response(body, media_type="application/json")

    @app.post("/api/peers", dependencies=guarded)
    def add_peer(req: PeerAddRequest) -> dict[str, Any]:
        return hub.add_peer(req.public_key, req.name, req.preshared)

    @app.delete("/api/peers/{device_id}", dependencies=guarded)
    def remove_peer(device_id: DEVICE_ID) -> dict[str, Any]:
        return hub.remove_peer(device_id)

    @app.post("/api/peers/{device_id}/revoke", dependencies=guarded)
    def revoke_peer(device_id: DEVICE_ID) -> dict[str, Any]:
        """Revoke for good: removed from the live interface first, the key and id never accepted again."""
        return hub.revoke_peer(device_id)

    @app.post("/api/tokens", dependencies=guarded)
    def create_token(req: TokenRequest) -> dict[str, Any]:
        return hub.create_token(req.device_name, req.profile, req.ttl_s, bundle_sha256=req.bundle_sha256)

    @app.get("/api/events", dependencies=guarded)
    async def events(
        limit: Annotated[int | None, Query(ge=1, le=100000)] = None,
        last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
    ) -> EventSourceResponse:
        """Server-sent events: peer_added, peer_removed, peer_revoked, peer_stats (every period).

        With ``Last-Event-ID`` (what an SSE client sends when it reconnects) the journaled
        events after it come first, across hub restarts; ``resync`` when the journal no
        longer reaches back that far."""
        after: int | None = None
        if last_event_id is not None:
            try:
                after = max(0, int(last_event_id))
            except ValueError:
                after = 0  # an id we never gave: replay all we still have

        async def gen() -> Any:
            async for ev in hub.bus.stream(limit, after=after):
                yield {"event": ev["type"], "id": str(ev["id"]), "data": json.dumps(ev)}

        return EventSourceResponse(gen(), ping=15)

    @app.post("/api/audit/{device_id}")
    async def audit_post(device_id: DEVICE_ID, body: Annotated[dict[str, Any], Body()]) -> dict[str, Any]:
        """A device ships audit entries + a checkpoint signed by its device key (no bearer token)."""
        result: dict[str, Any] = await run_in_threadpool(hub.audit_post, device_id, body)
        return result

    @app.get("/api/audit/{device_id}", dependencies=guarded)
    def audit_get(device_id: DEVICE_ID) -> dict[str, Any]:
        return hub.audit_get(device_id)

    @app.get("/api/manifests/pending", dependencies=guarded)
    def pending() -> dict[str, Any]:
        """Manifests waiting for the operator's offline signature (manifest_signing = "offline")."""
        return {"pending": hub.pending()}

    @app.post("/api/manifests/{device_id}", dependencies=guarded)
    def sign_pending(device_id: DEVICE_ID, signed: Annotated[dict[str, Any], Body()]) -> dict[str, Any]:
        """The operator posts the manifest signed offline (capability_manifest_sign); checked, then served."""
        return hub.sign_pending(device_id, signed)

    @app.get("/api/manifest/{device_id}")
    def current_manifest(device_id: DEVICE_ID) -> dict[str, Any]:
        """The device's current signed manifest (no bearer: the device agent polls it over the mesh)."""
        return hub.current_manifest(device_id)

    @app.get("/api/log", dependencies=guarded)
    def hub_log(kind: Annotated[str | None, Query(max_length=64)] = None) -> dict[str, Any]:
        """What the hub did and refused (enrollments, refusals, revocations), newest first."""
        return {"log": hub.store.logs(kind)}

    return app
