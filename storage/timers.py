"""Durable timers: accept timeouts, maximum waits, "still searching" reminders.

A timer is a document in `tenant_data` (partition = tenant id, id `timer:<timer id>`,
`type: "timer"`), so it survives a restart and every bot instance on the store sees it.

Firing once with several instances: each polls `due()`, then `claim()`s a timer by replacing
it If-Match the ETag it read, which writes a lease (owner, until) and counts the attempt. Of
two instances claiming the same read, exactly one wins; the other gets None and moves on.
The winner runs the handler and `finish()`es (delete If-Match the claimed ETag). An owner that
crashes mid-handler leaves a lease that expires: the timer is due again and another instance
claims it. So delivery is once per claim, and at least once overall: a handler that outlives
`lease_seconds`, or a crash between the handler and `finish()`, can make it fire again.
Handlers should be idempotent or quick (`lease_seconds` well above their run time).

Rescheduling (same timer id) upserts a fresh document: new due time, no lease, attempts 0,
and a new ETag, so an in-flight `finish()` of the old one is refused and the new one stays.

Time is injected (`clock`), epoch seconds: tests advance a fake clock instead of sleeping.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from storage.documents import Document, DocumentStore, NotFound, PreconditionFailed

TENANT_DATA = "tenant_data"
_PREFIX = "timer:"
_ID_FORBIDDEN = set("/\\?#")  # Cosmos item ids cannot hold them; refuse on both backends

log = logging.getLogger("switchboard.timers")


class Timer(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: str
    tenant_id: str
    session_id: str
    kind: str
    due_at: float  # epoch seconds
    payload: dict[str, Any] = Field(default_factory=dict)
    lease_owner: str | None = None
    lease_until: float | None = None
    attempts: int = 0
    # not part of the document: the ETag it was read with
    etag: str | None = Field(default=None, exclude=True)

    @property
    def doc_id(self) -> str:
        return _PREFIX + self.id

    def leased(self, now: float) -> bool:
        return self.lease_owner is not None and (self.lease_until or 0.0) > now

    def body(self) -> dict[str, Any]:
        out = self.model_dump(mode="json")
        # the store sets `id` to the document id; the timer's own id travels as `timer_id`
        out["timer_id"] = out.pop("id")
        out["type"] = "timer"
        return out

    @classmethod
    def from_document(cls, doc: Document) -> Timer:
        data = dict(doc.body)
        data["id"] = data.get("timer_id") or doc.id.removeprefix(_PREFIX)
        return cls.model_validate(data).model_copy(update={"etag": doc.etag})

    def describe(self) -> str:
        return f"timer {self.id!r} ({self.kind}) of session {self.session_id} in {self.tenant_id}"


class TimerStore:
    def __init__(
        self,
        docs: DocumentStore,
        *,
        owner: str,
        clock: Callable[[], float] = time.time,
        lease_seconds: float = 30.0,
        max_attempts: int = 5,
    ) -> None:
        self.docs = docs
        self.owner = owner
        self.clock = clock
        self.lease_seconds = float(lease_seconds)
        self.max_attempts = max_attempts

    async def schedule(
        self,
        tenant_id: str,
        session_id: str,
        kind: str,
        *,
        delay: float,
        payload: dict[str, Any] | None = None,
        timer_id: str | None = None,
    ) -> Timer:
        """Fire `kind` for the session in `delay` seconds; the same id replaces the earlier one."""
        timer_id = timer_id or f"{session_id}:{kind}"
        if _ID_FORBIDDEN & set(timer_id):
            raise ValueError(f"a timer id cannot contain / \\ ? #: {timer_id!r}")
        timer = Timer(
            id=timer_id,
            tenant_id=tenant_id,
            session_id=session_id,
            kind=kind,
            due_at=self.clock() + delay,
            payload=payload or {},
        )
        doc = await self.docs.upsert(TENANT_DATA, tenant_id, timer.doc_id, timer.body())
        return Timer.from_document(doc)

    async def get(self, tenant_id: str, timer_id: str) -> Timer | None:
        doc = await self.docs.read(TENANT_DATA, tenant_id, _PREFIX + timer_id)
        if doc is None or doc.body.get("type") != "timer":
            return None
        return Timer.from_document(doc)

    async def cancel(self, tenant_id: str, timer_id: str) -> bool:
        return await self.docs.delete(TENANT_DATA, tenant_id, _PREFIX + timer_id)

    async def cancel_session(
        self, tenant_id: str, session_id: str, kinds: Iterable[str] | None = None
    ) -> int:
        """Cancel the session's timers (only `kinds` when given); how many were deleted."""
        wanted = None if kinds is None else set(kinds)
        docs = await self.docs.query(
            TENANT_DATA, tenant_id, {"type": "timer", "session_id": session_id}
        )
        count = 0
        for doc in docs:
            if wanted is None or doc.body.get("kind") in wanted:
                count += int(await self.docs.delete(TENANT_DATA, tenant_id, doc.id))
        return count

    async def due(self, limit: int = 50) -> list[Timer]:
        """Timers due by now, earliest first, without the ones another claim holds.

        The query cannot exclude live leases, so they are dropped here: while more than
        `limit` timers are in flight this returns fewer (never wrong ones).
        """
        now = self.clock()
        docs = await self.docs.query(
            TENANT_DATA,
            None,
            {"type": "timer"},
            at_most={"due_at": now},
            order_by="due_at",
            limit=limit,
        )
        timers = [Timer.from_document(d) for d in docs]
        return [t for t in timers if not t.leased(now)]

    async def claim(self, timer: Timer) -> Timer | None:
        """Take the lease; None when another instance changed or removed the timer first."""
        if timer.etag is None:
            raise ValueError("claim needs the timer as read from the store (with its ETag)")
        now = self.clock()
        if timer.leased(now):
            return None  # read after someone claimed it
        claimed = timer.model_copy(
            update={
                "lease_owner": self.owner,
                "lease_until": now + self.lease_seconds,
                "attempts": timer.attempts + 1,
            }
        )
        try:
            doc = await self.docs.replace(
                TENANT_DATA, timer.tenant_id, timer.doc_id, claimed.body(), timer.etag
            )
        except (PreconditionFailed, NotFound):
            return None
        return Timer.from_document(doc)

    async def finish(self, timer: Timer) -> None:
        """Delete the fired timer, unless it was rescheduled (or cancelled) meanwhile."""
        with contextlib.suppress(PreconditionFailed, NotFound):
            await self.docs.delete(TENANT_DATA, timer.tenant_id, timer.doc_id, timer.etag)

    async def release(self, timer: Timer) -> None:
        """After a handler error: free it for a retry, or drop it after `max_attempts`."""
        with contextlib.suppress(PreconditionFailed, NotFound):
            if timer.attempts >= self.max_attempts:
                await self.docs.delete(TENANT_DATA, timer.tenant_id, timer.doc_id, timer.etag)
                log.error(
                    "%s dropped after %d failed attempts",
                    timer.describe(),
                    timer.attempts,
                    extra={"timer_id": timer.id, "tenant_id": timer.tenant_id},
                )
                return
            freed = timer.model_copy(update={"lease_owner": None, "lease_until": None})
            await self.docs.replace(
                TENANT_DATA, timer.tenant_id, timer.doc_id, freed.body(), timer.etag
            )


class TimerRunner:
    """Polls the store and fires due timers; one per bot instance."""

    def __init__(
        self,
        timers: TimerStore,
        handler: Callable[[Timer], Awaitable[None]],
        *,
        interval: float = 1.0,
    ) -> None:
        self.timers = timers
        self.handler = handler
        self.interval = interval
        self._task: asyncio.Task[None] | None = None

    async def run_once(self) -> int:
        """Fire what is due now; how many handlers completed. Handler errors stay here."""
        fired = 0
        for timer in await self.timers.due():
            claimed = await self.timers.claim(timer)
            if claimed is None:
                continue  # another instance has it
            try:
                await self.handler(claimed)
            except Exception:
                log.exception(
                    "%s: handler failed (attempt %d)",
                    claimed.describe(),
                    claimed.attempts,
                    extra={"timer_id": claimed.id, "tenant_id": claimed.tenant_id},
                )
                await self.timers.release(claimed)
                continue
            await self.timers.finish(claimed)
            fired += 1
        return fired

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._loop(), name="timers")

    async def stop(self) -> None:
        """Cancel the loop; a timer cut off mid-handler fires again when its lease expires."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    raise  # stop() itself was cancelled: pass that on

    async def _loop(self) -> None:
        while True:
            try:
                await self.run_once()
            except Exception:
                # the store may be briefly unavailable: keep polling
                log.exception("timer poll failed")
            await asyncio.sleep(self.interval)
