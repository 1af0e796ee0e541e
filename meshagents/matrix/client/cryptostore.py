"""nio's crypto store (``DefaultStore``), durable where it matters and cheap on every sync.

nio writes its SQLite store twice on every sync: the new sync token, and the set of rooms
that became encrypted (usually empty: an empty transaction). In SQLite's default rollback
journal with ``synchronous=FULL`` each commit costs several fsyncs; together with peewee's
per-call binding that was ~4-5 ms of every sync that carried an event (profiled in the
device agent during ``bench/bench_e2e.py``), on the path of every command: the bot's sync
that brings the operator's command, the agent's that brings the envelope, the bot's that
brings the answer. Here:

- the database runs in WAL mode, still ``synchronous=FULL``: every crypto write (Olm
  sessions, room keys, the account) is on disk when its commit returns, as before, with
  one fsync of the log instead of the journal's several;
- the sync token is written with ``synchronous=NORMAL`` for that one commit: no fsync of
  its own (the next FULL commit or checkpoint carries it). A power cut may lose the last
  tokens, never a key; the client then re-fetches a few events, which its handled-event
  set and the agent's nonce ledger already refuse to act on twice. A process kill loses
  nothing (the commit is in the OS);
- the token is written after the sync's events were handled, not before (nio's order);
- an empty set of newly encrypted rooms writes nothing, and an unchanged token neither;
- the token is one ``REPLACE`` on the account's row id (found once): nio's own write binds
  its peewee models and looks the account up on every call, ~0.7 ms idle and ~2 ms in a
  busy agent or bot (profiled with py-spy during ``bench/bench_e2e.py``), on the event
  loop between a sync's events and the tasks they started.
"""

from __future__ import annotations

from typing import Any

from nio.store import DefaultStore


class CryptoStore(DefaultStore):  # type: ignore[misc]
    _last_token: str | None = None
    _pending_token: str | None = None
    _account_id: int | None = None  # nio keeps the row (insert-or-ignore, then update)

    def _create_database(self) -> Any:
        # nio's own database class (peewee's), with the journal and sync pragmas added: peewee
        # is nio's dependency, not ours, so it is reached through nio's object.
        base = super()._create_database()
        return type(base)(
            self.database_path,
            pragmas={"foreign_keys": 1, "secure_delete": 1, "journal_mode": "wal", "synchronous": "full"},
        )

    def save_sync_token(self, token: str) -> None:
        """nio calls this before it hands a sync's events on: only noted here; the client
        writes it with :meth:`flush_sync_token` once the events were handled, so a crash
        in between fetches them again instead of skipping them (and the write is no longer
        between the event's arrival and its handling)."""
        self._pending_token = token

    def flush_sync_token(self) -> None:
        token = self._pending_token
        if token is None or token == self._last_token:
            return
        if self._account_id is None:
            account = self._get_account()
            assert account is not None, "a sync token needs the account saved first"  # as nio's own
            self._account_id = int(account.id)
        db = self.database
        db.execute_sql("PRAGMA synchronous=NORMAL")
        try:
            # nio's table (nio.store.models.SyncTokens: UNIQUE(account_id)), as its replace()
            db.execute_sql(
                "REPLACE INTO synctokens (token, account_id) VALUES (?, ?)", (token, self._account_id)
            )
        finally:
            db.execute_sql("PRAGMA synchronous=FULL")
        self._last_token = token

    def save_encrypted_rooms(self, rooms: Any) -> None:
        if rooms:
            super().save_encrypted_rooms(rooms)
