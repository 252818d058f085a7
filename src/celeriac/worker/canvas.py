"""The worker's canvas half: what runs after a task, from its ``on_stored`` hook (worker/outcome.py).

After a final outcome is stored and before a late ack, `CanvasHook` reads the message's embed:

* SUCCESS: each callback (``link``) is sent with the result prepended (unless immutable), then the next chain
  step (the *last* element of ``chain``) with the rest of the chain, ``parent_id`` = this task and the same
  ``root_id``;
* FAILURE: each errback (``link_error``) is sent with this task's id as its argument (Celery's new-style
  errbacks), except an old-style one registered here whose function takes more than one argument: it is called
  in-process with ``(request, exc, traceback)``, by Celery's rule (worker/canvas_errbacks.py);
* a message naming a task this worker does not have (`CanvasHook.unknown`) fails like a task that raised
  ``NotRegistered``: its errbacks run and, as a chord header task, it joins its chord as failed, so the chord's
  body fails with `ChordError` instead of waiting forever for a member that never runs;
* a chord header task (``group`` header and ``chord`` in the embed), whatever its outcome: its outcome joins
  the chord (`ResultBackend.chord_part`). The one caller that claims the complete join sends the body with the
  list of header results, or, when a header task failed or was revoked, stores FAILURE
  (`ChordError`) for the body's id and sends the body's errbacks; then marks the chord done.

Exactly once: the backend fences redelivered header tasks and gives the claim to one caller; a claimer that
dies before marking the chord done leaves the header message un-acked (acks_late), and its redelivery claims
again once the claim lapsed. A hook that finds another worker's claim live waits for it to finish or lapse; if
it does neither in time, the hook fails and the message is requeued (outcome.py's rule), never dropped.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from celeriac.app.context import RequestContext
from celeriac.backends.base import ChordMember, ResultBackend
from celeriac.canvas import ChordError, Signature
from celeriac.canvas.errbacks import old_style
from celeriac.canvas.options import CELERY_INTERNAL, SENDABLE
from celeriac.errors import BackendError
from celeriac.protocol.failures import exception_from_dict, exception_to_dict
from celeriac.protocol.states import State
from celeriac.worker.canvas_errbacks import call_old_style
from celeriac.worker.meta import make_meta
from celeriac.worker.outcome import Outcome
from celeriac.worker.request import message_context

if TYPE_CHECKING:
    from collections.abc import Callable

    from celeriac.app.app import App
    from celeriac.protocol.message import TaskMessage
    from celeriac.worker.request import Request

log = logging.getLogger("celeriac.worker")

CLAIM_TTL = 30.0  # seconds a claimer has to send the body before another caller may take the chord over
FAILED = frozenset({State.FAILURE, State.REVOKED})


class ChordBusy(BackendError):
    """Another worker's claim on a complete chord neither finished nor lapsed in time (the message is requeued)."""


class CanvasHook:
    """The ``on_stored`` hook that runs callbacks, errbacks, the next chain step and chord joins."""

    def __init__(self, app: App, claim_ttl: float = CLAIM_TTL) -> None:
        self.app = app
        self.claim_ttl = claim_ttl

    async def __call__(self, request: Request, outcome: Outcome) -> None:
        await self._settle(request.message, request.context, outcome)

    async def unknown(self, message: TaskMessage, error: BaseException) -> None:
        """Settle the canvas duties of a message naming a task this worker does not have, as a FAILURE with
        ``error`` (its result is stored already): errbacks run, and a chord member joins its chord as failed."""
        await self._settle(message, lambda: message_context(message), Outcome(State.FAILURE, error, None))

    async def _settle(self, m: TaskMessage, context: Callable[[], RequestContext], outcome: Outcome) -> None:
        embed: Any = m.embed
        if not embed or not any(embed.get(k) for k in ("callbacks", "errbacks", "chain", "chord")):
            return  # nearly every message: nothing to do
        if outcome.state == State.SUCCESS:
            await self._succeeded(m, outcome.value, embed)
        elif outcome.state == State.FAILURE:
            failure = (outcome.value, outcome.traceback)
            await self._errbacks(m.id, m, context, embed.get("errbacks") or (), failure)
        if embed.get("chord") and m.group:
            await self._chord_part(m, context, outcome, embed["chord"])

    def _lineage(self, m: TaskMessage) -> dict[str, Any]:
        return {"parent_id": m.id, "root_id": m.root_id or m.id}

    async def _succeeded(self, m: TaskMessage, value: Any, embed: Any) -> None:
        for callback in embed.get("callbacks") or ():
            await self._send_dict(callback, (value,), self._lineage(m))
        steps = list(embed.get("chain") or ())
        if steps:
            await self._send_dict(steps.pop(), (value,), {**self._lineage(m), "chain": steps or None})

    async def _errbacks(
        self,
        task_id: str,
        m: TaskMessage,
        context: Callable[[], RequestContext],
        errbacks: Any,
        failure: tuple[Any, str | None] | None = None,
    ) -> None:
        for errback in errbacks:
            name = errback.get("task") if isinstance(errback, dict) else None
            task = self.app.tasks.get(name) if isinstance(name, str) else None
            if failure is not None and task is not None and old_style(task):
                await call_old_style(task, errback, context(), *failure)
            else:
                await self._send_dict(errback, (task_id,), self._lineage(m))

    async def _send_dict(self, d: Any, args: tuple[Any, ...], options: dict[str, Any]) -> None:
        try:
            sig = Signature.from_dict(d, app=self.app)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            log.error("Canvas step %r cannot be read (malformed signature): %s", d.get("task"), exc)
            return
        await self._send(sig, args, options)

    async def _send(self, sig: Signature, args: tuple[Any, ...], options: dict[str, Any]) -> None:
        """Send one step. A step the message describes badly is logged and skipped (its redelivery would fail
        the same way forever); a broker or backend error propagates (the message is requeued: at least once)."""
        unknown = [k for k in sig.options if k not in SENDABLE and k not in CELERY_INTERNAL]
        if unknown:  # from another client's signature: sent without them, said once here
            log.warning("Canvas step %s: options %s not supported here, sent without them", sig.name, unknown)
            for key in unknown:
                del sig.options[key]
        try:
            await sig.aapply_async(args, None, **{k: v for k, v in options.items() if v is not None})
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            log.error("Canvas step %s cannot be sent (malformed signature): %s", sig.get("task"), exc)

    # -- chords ----------------------------------------------------------------------------------------
    async def _chord_part(
        self, m: TaskMessage, context: Callable[[], RequestContext], outcome: Outcome, body: Any
    ) -> None:
        backend = await self._backend(m.group)
        if backend is None:
            return
        failed = outcome.state in FAILED
        result = exception_to_dict(outcome.value) if failed else outcome.value
        member = ChordMember(m.id, str(outcome.state), result)
        size = body.get("chord_size") if isinstance(body, dict) else None
        index = m.group_index if m.group_index is not None else 0
        deadline = time.monotonic() + self.claim_ttl + 5.0
        pause = 0.05
        while True:
            join = await backend.chord_part(str(m.group), index, member, size, self.claim_ttl)
            if join.status in ("waiting", "done"):
                return
            if join.status == "claimed":
                await self._dispatch(m, context, body, join.members, backend)
                if not await backend.chord_done(str(m.group), join.token):
                    log.warning("Chord %s: the claim lapsed before it was marked done (body sent)", m.group)
                return
            if time.monotonic() > deadline:  # busy: another worker sends the body, or died doing so
                raise ChordBusy(f"chord {m.group}: another worker's claim neither finished nor lapsed")
            await asyncio.sleep(pause)  # polling, bounded: a claim's end is not announced
            pause = min(pause * 2, 1.0)

    async def _backend(self, group: str | None) -> ResultBackend | None:
        if not self.app.backend_url:
            log.error("Chord %s cannot be joined: no result backend is configured (result_backend)", group)
            return None
        return await self.app.abackend()

    async def _dispatch(
        self,
        m: TaskMessage,
        context: Callable[[], RequestContext],
        body: Any,
        members: tuple[ChordMember, ...],
        backend: ResultBackend,
    ) -> None:
        try:
            sig = Signature.from_dict(body, app=self.app)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            log.error("Chord %s: its body cannot be read (malformed signature): %s", m.group, exc)
            return
        failure = next((mb for mb in members if mb.state in FAILED), None)
        if failure is None:
            await self._send(sig, ([mb.result for mb in members],), self._lineage(m))
            return
        cause = exception_from_dict(failure.result) if isinstance(failure.result, dict) else failure.result
        error = ChordError(f"Dependency {failure.task_id} raised {cause!r}")
        body_id = sig.id
        log.error("Chord %s failed: %s", m.group, error)
        if body_id:
            await backend.store(make_meta(body_id, State.FAILURE, exception_to_dict(error)))
            await self._errbacks(body_id, m, context, sig.options.get("link_error") or ())
