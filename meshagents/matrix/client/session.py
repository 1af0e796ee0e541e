"""The client's lifecycle: log in or restore a saved session, open the stores, close.

One ``Session`` per start: it owns the nio client, the handled-events table and the
raw authenticated API call the cross-signing and key-backup code need. A saved token
the server refuses retires the crypto store and logs in as a new device.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable
from typing import Any

import aiohttp
import nio

from meshagents.errors import FnError
from meshagents.fsutil import read_json, write_private
from meshagents.matrix.client.cryptostore import CryptoStore
from meshagents.matrix.client.types import ClientConfig
from meshagents.matrix.store import HandledEvents

log = logging.getLogger("meshagents.matrix")

#: What a homeserver that does not answer raises (degraded, retried).
NET_ERRORS = (aiohttp.ClientError, OSError, asyncio.TimeoutError)


class Session:
    """The nio client and stores of one started client (None until ``open``)."""

    def __init__(self, config: ClientConfig) -> None:
        self.config = config
        self._nio: nio.AsyncClient | None = None
        self.handled: HandledEvents | None = None
        self.device_id: str | None = None
        #: True when this store had no sync token: its first sync is history, not news.
        self.first_sync_ever = False

    @property
    def client(self) -> nio.AsyncClient:
        if self._nio is None:
            raise FnError("matrix_not_started", "the Matrix client is not started")
        return self._nio

    @property
    def is_open(self) -> bool:
        return self._nio is not None

    async def open(self) -> None:
        cfg = self.config
        cfg.store_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        nio_store = cfg.store_dir / "nio"
        nio_store.mkdir(exist_ok=True, mode=0o700)
        client = nio.AsyncClient(
            cfg.homeserver,
            cfg.user_id,
            store_path=str(nio_store),
            config=nio.AsyncClientConfig(
                store=CryptoStore,  # nio's store, minus its fsyncs on every sync (cryptostore.py)
                store_sync_tokens=True,
                encryption_enabled=True,
                # Connection errors must reach us (degraded state), not be retried forever inside nio.
                max_timeouts=0,
                request_timeout=cfg.sync_timeout_ms / 1000 + 20,
            ),
        )
        self._nio = client
        session_path = cfg.store_dir / "session.json"
        session = read_json(session_path)
        if session and session.get("user_id") == cfg.user_id:
            client.restore_login(cfg.user_id, session["device_id"], session["access_token"])
            who = await client.whoami()
            if isinstance(who, nio.WhoamiError) and who.status_code == "M_UNKNOWN_TOKEN":
                # The device was logged out or the server forgot it: its keys are gone there,
                # so retire this crypto store and come back as a new (cross-signed) device.
                log.warning("%s: saved session no longer valid; logging in as a new device", cfg.user_id)
                await client.close()
                self._nio = None
                nio_store.rename(cfg.store_dir / f"nio.retired-{int(time.time())}")
                session_path.unlink()
                await self.open()
                return
        else:
            resp = await client.login(cfg.password, device_name=cfg.device_name)
            if not isinstance(resp, nio.LoginResponse):
                raise FnError("matrix_login_failed", f"login of {cfg.user_id} failed: {resp.message}")
            write_private(
                session_path,
                {"user_id": cfg.user_id, "device_id": resp.device_id, "access_token": resp.access_token},
            )
        self.device_id = str(client.device_id)
        self.handled = HandledEvents(cfg.store_dir / "handled.sqlite")
        self.first_sync_ever = client.loaded_sync_token is None
        if client.should_upload_keys:
            resp_up = await client.keys_upload()
            if not isinstance(resp_up, nio.KeysUploadResponse):
                raise FnError("matrix_keys_upload_failed", str(resp_up))

    async def close_quietly(self) -> None:
        client, self._nio = self._nio, None
        if client is not None:
            with contextlib.suppress(Exception):
                if isinstance(client.store, CryptoStore):
                    client.store.flush_sync_token()
                await client.close()
        handled, self.handled = self.handled, None
        if handled is not None:
            handled.close()

    async def api(
        self, method: str, path: str, body: dict[str, Any] | None = None
    ) -> tuple[int, dict[str, Any]]:
        """One authenticated JSON call nio has no method for: (status, answer or {})."""
        client = self.client
        headers = {"Authorization": f"Bearer {client.access_token}", "Content-Type": "application/json"}
        resp = await client.send(method, path, json.dumps(body) if body is not None else None, headers)
        try:
            data: dict[str, Any] = await resp.json(content_type=None)
        except (ValueError, aiohttp.ContentTypeError):
            data = {}
        return resp.status, data

    async def keys_query(self, users: list[str]) -> dict[str, Any]:
        """``/keys/query`` for ``users`` (the cross-signing keys nio does not keep)."""
        status, data = await self.api(
            "POST", "/_matrix/client/v3/keys/query", {"device_keys": {u: [] for u in users}}
        )
        if status != 200:
            raise FnError("matrix_keys_query_failed", f"/keys/query answered {status}")
        return data

    async def net(self, coro: Awaitable[Any]) -> Any:
        """Await ``coro``; a homeserver that does not answer is ``homeserver_unreachable``."""
        try:
            return await coro
        except NET_ERRORS as exc:
            raise FnError("homeserver_unreachable", f"{self.config.homeserver}: {exc}") from exc
