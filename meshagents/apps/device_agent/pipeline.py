"""The agent's core under the Matrix shell: manifest, envelope checks, audit, run.

    p = Pipeline(config)                           # opens the audit log (chain + nonces)
    p.manifest(now=None) -> Manifest               # verified vs the operator key trusted now
    p.operator_key() -> str                        # pinned key followed through rotations.json
    p.accept_rotation(content) -> RotationResult   # an org.meshagents.rotation event content
    approval_ids(content) -> (A event id | None, R event id hint | None)
    v = p.check(content, approvals=None, now=None) -> Verdict     # pure but for the stores
    p.refuse(v) -> AuditEntry                      # an "event" entry for a refusal
    p.begin(v) -> Verdict                          # intent + nonce in one transaction
    p.execute(v, ctx) -> CapResult                 # blocking; call it in a worker thread
    p.finish(v, result, duration_ms) -> Outcome    # outcome entry
    p.process(content, approvals, ctx) -> Outcome  # all of the above, synchronously
    p.interrupted() -> list[AuditEntry]            # intents without outcome not yet reported
    p.mark_interrupted(found)                      # ... now reported (after the notice was sent)

``content`` is the ``org.meshagents.envelope`` event content of ``meshagents/bus.py``
(or a bare envelope dict). Checks run in the ARCHITECTURE order through
``meshagents.trust.envelope.verify``: signature, device, time window, nonce,
capability, arguments, approval. The approval check is the device's own: the
approval event A named by the signed envelope and the request R it answers, fetched
by the shell from ``#operator-approvals`` *before* ``check`` (``verify`` takes a sync
callback) together with every event between R and A, then judged by
``meshagents.trust.approval.check_approval``. A refused approval's reason starts with
its stable code (``approval_denied: ...``). ``begin`` spends the approval event with
the nonce and the intent in one transaction (``approval_reused`` on a second use).

``fs.write``: the bot sends ``{"path", "content"}``; the manifest declares ``content``
as a free-form text argument (``texts: {"content": <max bytes>}``), so ``verify``
checks all of it — there is no side path.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field, replace
from typing import Any

from meshagents.apps.device_agent import attach, capabilities
from meshagents.apps.device_agent.capabilities.base import CapResult, Context
from meshagents.apps.device_agent.config import AgentConfig
from meshagents.bus import EnvelopeEvent, RotationEvent
from meshagents.errors import FnError
from meshagents.fsutil import write_atomic
from meshagents.trust import approval as trust_approval
from meshagents.trust import envelope as trust_envelope
from meshagents.trust import manifest as trust_manifest
from meshagents.trust import rotation as trust_rotation
from meshagents.trust.audit import AuditLog
from meshagents.trust.constraints import resolve_path
from meshagents.trust.manifest import Decision, SerialStore
from meshagents.trust.models import AuditEntry, Envelope, Manifest

INTERRUPTED = "interrupted"
_MAX_ID = 128


@dataclass(frozen=True)
class ApprovalEvents:
    """A and R as fetched by the shell (``{"event_id","type","sender","content",
    "origin_server_ts"}``), and the events between them (each with ``verified``;
    None when they could not be read)."""

    approval: dict[str, Any] | None = None
    approval_verified: bool = False
    request: dict[str, Any] | None = None
    request_verified: bool = False
    between: list[dict[str, Any]] | None = None
    problem: str = ""


@dataclass(frozen=True)
class RotationResult:
    """What an ``org.meshagents.rotation`` event did: ``ok`` or a stable refusal code."""

    status: str  # ok | rotation_invalid | rotation_conflict | rotation_unchained | manifest_*
    reason: str
    operator_key: str = ""
    serial: int | None = None


@dataclass(frozen=True)
class Verdict:
    status: str
    reason: str
    request_id: str
    capability: str
    envelope: Envelope | None = None
    decision: Decision | None = None
    reply_to: str | None = None
    audit_seq: int | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@dataclass(frozen=True)
class Outcome:
    """What goes back to the room (``org.meshagents.result`` + a notice) and to stdout."""

    status: str
    reason: str
    request_id: str
    device_id: str
    capability: str
    exit_code: int | None = None
    output: str = ""
    truncated: bool = False
    audit_seq: int | None = None
    duration_ms: int = 0
    reply_to: str | None = None
    approval: str | None = None
    data: dict[str, Any] | None = field(default=None)
    #: Largest file the reply may send instead of inline output (meshagents/apps/device_agent/attach.py).
    attachment_cap: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "reason": self.reason,
            "request_id": self.request_id,
            "device_id": self.device_id,
            "capability": self.capability,
            "exit_code": self.exit_code,
            "output": self.output,
            "truncated": self.truncated,
            "audit_seq": self.audit_seq,
            "duration_ms": self.duration_ms,
            "approval": self.approval,
        }


def envelope_of(content: Any) -> Any:
    """The envelope inside an event content (or the content itself if it is one)."""
    return EnvelopeEvent.from_content(content).envelope


def approval_ids(content: Any) -> tuple[str | None, str | None]:
    """(A named by the envelope, R hint from the event), unverified: only for fetching."""
    event = EnvelopeEvent.from_content(content)
    return event.approval, event.approval_request_event


def _label(value: Any) -> str:
    text = value if isinstance(value, str) else ""
    return "".join(ch if ch.isprintable() else "?" for ch in text)[:_MAX_ID]


class Pipeline:
    """One device's verification and execution pipeline over its durable stores."""

    def __init__(self, config: AgentConfig) -> None:
        self.config = config
        config.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.audit = AuditLog(config.audit_path, device_id=config.device_id)
        self.serials = SerialStore(config.serials_path)
        self._manifest: Manifest | None = None
        self._stamp: tuple[int, ...] | None = None
        self.rotations = trust_rotation.RotationLog(config.rotations_path)

    def close(self) -> None:
        self.audit.close()
        self.serials.close()

    # ---------------------------------------------------------------- manifest
    def manifest(self) -> Manifest:
        """The operator-signed manifest, re-read when the file changes (a renewal).

        FnError: manifest_unreadable | manifest_invalid_signature | manifest_invalid |
        manifest_serial_rollback | manifest_covers_agent_state (a prefix, cwd or visible
        path reaches the agent's own state, config, audit store or keys). Expiry is left
        to ``decide()`` (rejected_capability).
        """
        path = self.config.manifest_path
        try:
            st = os.stat(path)
        except OSError as exc:
            raise FnError("manifest_unreadable", f"cannot read {path}: {exc.strerror}") from exc
        stamp: tuple[int, ...] = (st.st_mtime_ns, st.st_size, *self._rotations_stamp())
        if self._manifest is None or stamp != self._stamp:
            self._manifest = None  # a new rotation statement re-judges the manifest in place
            data = trust_manifest.load_file(path)
            model = trust_manifest.verify(data, self.operator_key(), serials=self.serials)
            if model.device_id != self.config.device_id:
                raise FnError(
                    "manifest_invalid", f"manifest is for {model.device_id}, not {self.config.device_id}"
                )
            trust_manifest.check_agent_state(model, self.config.protected_paths(), resolver=resolve_path)
            self._manifest, self._stamp = model, stamp
        return self._manifest

    def _rotations_stamp(self) -> tuple[int, int]:
        try:
            st = os.stat(self.config.rotations_path)
        except FileNotFoundError:
            return (0, 0)
        return (st.st_mtime_ns, st.st_size)

    def operator_key(self) -> str:
        """The key pinned at enrollment, followed through the accepted rotation statements.

        FnError: rotation_invalid | rotation_conflict (then nothing verifies: deny by default).
        """
        return trust_rotation.follow(self.config.operator_key, self.rotations.load())

    def accept_rotation(self, content: Any) -> RotationResult:
        """An ``org.meshagents.rotation`` event: ``{"statement": {...}, "manifest": {...} | null}``.

        The statement authenticates itself (signed by the old and the new key), so it may
        come from anyone; it must start at the key trusted now. A manifest sent with it
        must verify under the new key (serial rules included) before anything is kept;
        then the statement is appended to ``rotations.json`` and the manifest replaces
        the file. From then on a manifest signed by the retired key is refused.
        """
        event = RotationEvent.from_content(content)
        if event is None:
            return RotationResult("rotation_invalid", "the event carries no rotation statement")
        try:
            current = self.operator_key()
            statement = trust_rotation.verify_statement(event.statement)
            known = self.rotations.load()
            if any(s.model_dump(mode="json") == statement.model_dump(mode="json") for s in known):
                new_key = current
            elif statement.old_key != current:
                return RotationResult(
                    "rotation_unchained", "the statement does not start at the operator key trusted now",
                    current,
                )
            else:
                new_key = trust_rotation.follow(self.config.operator_key, [*known, statement])
            manifest = event.manifest
            model: Manifest | None = None
            if manifest is not None:
                if not isinstance(manifest, dict):
                    return RotationResult("manifest_invalid", "the manifest is not an object", current)
                model = trust_manifest.verify(manifest, new_key, serials=self.serials)
                if model.device_id != self.config.device_id:
                    return RotationResult(
                        "manifest_invalid", f"manifest is for {model.device_id}, not {self.config.device_id}",
                        current,
                    )
            if new_key != current:
                self.rotations.append(statement)
            if model is not None:
                _write_atomic(self.config.manifest_path, model.model_dump(mode="json"))
        except FnError as exc:
            return RotationResult(exc.code, exc.message)
        serial = model.serial if model is not None else None
        what = f"; manifest serial {serial} installed" if serial is not None else ""
        return RotationResult("ok", f"operator key is now {new_key}{what}", new_key, serial)

    # ---------------------------------------------------------------- checks
    def check(
        self, content: Any, approvals: ApprovalEvents | None = None, *, now: int | None = None
    ) -> Verdict:
        """Every check of the envelope in ``content``; never raises for bad input."""
        now = int(time.time()) if now is None else now
        event = EnvelopeEvent.from_content(content)
        raw = event.envelope
        rid, cap_name = _label(event.get("request_id")), _label(event.get("capability"))
        base = Verdict("rejected_signature", "", rid, cap_name, reply_to=event.reply_to)
        if not isinstance(raw, dict):
            return replace(base, reason="no envelope in the event")
        try:
            manifest = self.manifest()
        except FnError as exc:
            # Without a valid manifest nothing is allowed: deny by default.
            return replace(base, status="rejected_capability", reason=f"{exc.code}: {exc.message}")
        why: list[str] = []

        def approval_check(env: Envelope, m: Manifest) -> bool:
            ok, reason = self._judge_approval(env, m, approvals, now)
            why.append(reason)
            return ok

        # Docker paths name files inside a container: lexical checks only (trust core docs).
        resolve = not cap_name.startswith("docker.")
        res = trust_envelope.verify(
            raw,
            manifest,
            self.audit.nonces,
            now=now,
            skew_s=self.config.skew_s,
            approval_check=approval_check,
            resolve=resolve,
        )
        reason = res.reason
        if res.status == "rejected_approval" and why:
            reason = why[-1]  # "<stable code>: <detail>"
        verdict = replace(
            base, status=res.status, reason=reason, envelope=res.envelope, decision=res.decision
        )
        cap = res.decision.capability if res.decision is not None else None
        if res.ok and cap is not None and capabilities.handler_for(cap) is None:
            return replace(
                verdict,
                status="rejected_capability",
                reason=f"{cap_name} is not implemented by this agent",
            )
        return verdict

    def _judge_approval(
        self, env: Envelope, m: Manifest, approvals: ApprovalEvents | None, now: int
    ) -> tuple[bool, str]:
        if approvals is None or approvals.approval is None:
            problem = approvals.problem if approvals and approvals.problem else "approval event not found"
            return False, f"approval_not_found: {problem}"
        if env.approval and self.audit.nonces.approval_used(env.approval) is not None:
            return False, "approval_reused: this approval was already used"
        verdict = trust_approval.check_approval(
            envelope=env,
            manifest=m,
            approval=approvals.approval,
            approval_verified=approvals.approval_verified,
            request=approvals.request,
            request_verified=approvals.request_verified,
            between=approvals.between,
            now=now,
            skew_s=self.config.skew_s,
        )
        lookup_codes = ("request_not_found", "approval_history_unknown")
        if not verdict.ok and approvals.problem and verdict.code in lookup_codes:
            return False, f"{verdict.code}: {approvals.problem}"
        return verdict.ok, verdict.reason

    # ---------------------------------------------------------------- audit + run
    def refuse(self, verdict: Verdict) -> Verdict:
        """Write the refusal to the chain (an ``event`` entry)."""
        args = verdict.envelope.args if verdict.envelope is not None else None
        entry = self.audit.append_event(
            verdict.capability or "-",
            verdict.status,
            request_id=verdict.request_id,
            detail=verdict.reason[:1000],
            args=args,
        )
        return replace(verdict, audit_seq=entry.seq)

    def begin(self, verdict: Verdict) -> Verdict:
        """The intent entry and the nonce, in one transaction; a replay racing us loses here."""
        env = verdict.envelope
        assert env is not None and verdict.ok
        try:
            entry = self.audit.append_intent(
                env.request_id,
                env.capability,
                env.args,
                approval=env.approval,
                nonce=env.nonce,
                keep_until=trust_envelope.keep_until(env, self.config.skew_s),
            )
        except FnError as exc:
            if exc.code == "rejected_approval":  # the approval was spent by a racing request
                return self.refuse(replace(verdict, status="rejected_approval", reason=exc.message))
            if exc.code != "rejected_nonce":
                raise
            return self.refuse(
                replace(verdict, status="rejected_nonce", reason="nonce already used (replay)")
            )
        return replace(verdict, audit_seq=entry.seq)

    def execute(self, verdict: Verdict, ctx: Context, content: bytes | None = None) -> CapResult:
        """``content``: the bytes of an uploaded file the shell fetched and checked for
        an ``fs.write`` that names one (meshagents/apps/device_agent/upload.py)."""
        assert verdict.decision is not None and verdict.envelope is not None
        decision = verdict.decision
        if decision.capability is not None:
            # Output that will go as a file may be longer than what fits inline (attach.py).
            decision = replace(decision, output_cap_bytes=attach.capture_cap(decision.capability))
        args = dict(verdict.envelope.args)
        if content is not None:
            args["content"] = content
        try:
            return capabilities.run(decision, args, ctx)
        except Exception as exc:  # a bug in a handler must still end in an outcome entry
            return CapResult(
                "error", f"internal error: {type(exc).__name__}: {exc}\n", detail="internal_error"
            )

    def finish(self, verdict: Verdict, result: CapResult, duration_ms: int) -> Outcome:
        env = verdict.envelope
        assert env is not None
        audit_status = result.status
        if result.status == "ok" and result.exit_code not in (None, 0):
            audit_status = f"exit_{result.exit_code}"
        entry = self.audit.append_outcome(
            env.request_id, env.capability, audit_status, detail=(result.detail or "")[:1000]
        )
        status = "ok" if result.status == "ok" else "error"
        reason = result.detail or result.status
        return Outcome(
            status,
            reason,
            env.request_id,
            self.config.device_id,
            env.capability,
            result.exit_code,
            result.output,
            result.truncated,
            entry.seq,
            duration_ms,
            verdict.reply_to,
            env.approval,
            result.data,
            attach.attachment_cap(verdict.decision.capability if verdict.decision else None),
        )

    def refused_outcome(self, verdict: Verdict) -> Outcome:
        return Outcome(
            verdict.status,
            verdict.reason,
            verdict.request_id,
            self.config.device_id,
            verdict.capability,
            None,
            "",
            False,
            verdict.audit_seq,
            0,
            verdict.reply_to,
            verdict.envelope.approval if verdict.envelope else None,
        )

    def error_outcome(self, content: Any, reason: str) -> Outcome:
        """An ``error`` answer for a request the agent failed on (not a refusal)."""
        event = EnvelopeEvent.from_content(content)
        return Outcome(
            "error",
            reason,
            _label(event.get("request_id")),
            self.config.device_id,
            _label(event.get("capability")),
            reply_to=event.reply_to,
        )

    def process(
        self, content: Any, approvals: ApprovalEvents | None, ctx: Context, *, now: int | None = None
    ) -> Outcome:
        """The whole pipeline, synchronously (``--replay-test`` and tests)."""
        verdict = self.check(content, approvals, now=now)
        if not verdict.ok:
            return self.refused_outcome(self.refuse(verdict))
        verdict = self.begin(verdict)
        if not verdict.ok:
            return self.refused_outcome(verdict)
        t0 = time.monotonic()
        result = self.execute(verdict, ctx)
        return self.finish(verdict, result, int((time.monotonic() - t0) * 1000))

    # ---------------------------------------------------------------- restart
    def interrupted(self) -> list[AuditEntry]:
        """Intents with no outcome that no earlier start has reported (read only: they
        count as reported once :meth:`mark_interrupted` has recorded it)."""
        reported = self.audit.request_ids("event", INTERRUPTED)
        return [e for e in self.audit.pending() if e.request_id not in reported]

    def mark_interrupted(self, found: list[AuditEntry]) -> None:
        """Record that ``found`` was announced: an ``event`` entry ``interrupted`` each (the
        intent itself stays outcome-less). Called after the announcement was sent, so a
        send that fails, or a stop before it, leaves them to be announced again."""
        for entry in found:
            self.audit.append_event(
                entry.capability,
                INTERRUPTED,
                request_id=entry.request_id,
                detail=f"intent at seq {entry.seq} has no outcome: the agent stopped while it ran",
            )


def _write_atomic(path: Any, data: dict[str, Any]) -> None:
    write_atomic(path, json.dumps(data, sort_keys=True, ensure_ascii=False) + "\n", mode=0o666)
