"""Durable timers: accept timeouts, maximum waits, "still searching" reminders.

A timer is a document in the `timers` container, partitioned by the minute it is due
(`bucket`, e.g. "2026-12-01T09:41"). So it survives a restart, every bot instance sees it,
and the poll reads one partition (two at a minute's turn): its cost grows with the timers
due now, never with history, departments or instances. Each instance keeps a cursor, the
oldest bucket that may still hold a due timer; at start it finds it with one query over all
buckets, and it moves forward as buckets empty.

Firing once with several instances: each polls `due()`, then `claim()`s a timer by replacing
it If-Match the ETag it read, which writes a lease (owner, until) and counts the attempt. Of
two instances claiming the same read, exactly one wins. The winner runs the handler and
`finish()`es (delete If-Match the claimed ETag). An owner that crashes mid-handler leaves a
lease that expires; the timer is due again and another instance claims it. A handler can
therefore run twice (a crash between its effect and `finish()`, or a handler slower than
the lease): handlers record their effect in the session they act on, in the same write,
and a timer the session no longer wants (`Session.timers`) does nothing.

The session is the truth about which timers it wants: a timer is written *before* the session
write that wants it (a crash between the two leaves a timer the session does not want, which
fires and does nothing), and cancelling one is just the session forgetting it (the document
fires later and does nothing; `cancel` deletes it early when its id is known).

Time is injected (`clock`), epoch seconds: tests advance a fake clock instead of sleeping.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from storage.documents import Document, DocumentStore, NotFound, PreconditionFailed
from storage.layout import TIMERS

_ID_FORBIDDEN = set("/\\?#")  # Cosmos item ids cannot hold them; refuse on both backends
# a timer no one fired (its session long gone) disappears this long after it was due
ORPHAN_TTL = 7 * 86_400

log = logging.getLogger("switchboard.timers")


def bucket_of(when: float) -> str:
    return datetime.fromtimestamp(when, UTC).strftime("%Y-%m-%dT%H:%M")


def _next_bucket(bucket: str) -> str:
    start = datetime.strptime(bucket, "%Y-%m-%dT%H:%M").replace(tzinfo=UTC).timestamp()
    return bucket_of(start + 60)


class Timer(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: str
    tenant_id: str
    session_id: str
    kind: str
    due_at: float  # epoch seconds
    payload: dict[str, Any] = Field(default_factory=dict)
    scheduled_at: float = 0.0
    lease_owner: str | None = None
    lease_until: float | None = None
    attempts: int = 0
    # not part of the document: the ETag it was read with
    etag: str | None = Field(default=None, exclude=True)

    @property
    def bucket(self) -> str:
        return bucket_of(self.due_at)

    @property
    def key(self) -> str:
        """What the session records to say it wants this timer (and no other of its kind)."""
        return self.id

    def leased(self, now: float) -> bool:
        return self.lease_owner is not None and (self.lease_until or 0.0) > now

    def body(self) -> dict[str, Any]:
        out = self.model_dump(mode="json")
        out["timer_id"] = out.pop("id")
        out["type"] = "timer"
        out["ttl"] = int(max(0.0, self.due_at - time.time())) + ORPHAN_TTL
        return out

    @classmethod
    def from_document(cls, doc: Document) -> Timer:
        data = dict(doc.body)
        data["id"] = data.get("timer_id") or doc.id
        return cls.model_validate(data).model_copy(update={"etag": doc.etag})

    def describe(self) -> str:
        return f"timer {self.id!r} ({self.kind}) of session {self.session_id} in {self.tenant_id}"


def timer_id(session_id: str, kind: str, due_at: float) -> str:
    return f"{session_id}:{kind}:{round(due_at * 1000)}"


class TimerStore:
    def __init__(
        self,
        docs: DocumentStore,
        *,
        owner: str,
        clock: Callable[[], float] = time.time,
        lease_seconds: float = 60.0,
        max_attempts: int = 5,
    ) -> None:
        self.docs = docs
        self.owner = owner
        self.clock = clock
        self.lease_seconds = float(lease_seconds)
        self.max_attempts = max_attempts
        # the oldest bucket that may still hold a due timer (None: not looked yet)
        self._cursor: str | None = None

    def plan(
        self, tenant_id: str, session_id: str, kind: str, *, delay: float,
        payload: dict[str, Any] | None = None,
    ) -> Timer:
        """The timer, not yet written: its key goes into the session's write."""
        due_at = self.clock() + max(0.0, delay)
        tid = timer_id(session_id, kind, due_at)
        if _ID_FORBIDDEN & set(tid):
            raise ValueError(f"a timer id cannot contain / \\ ? #: {tid!r}")
        return Timer(id=tid, tenant_id=tenant_id, session_id=session_id, kind=kind,
                     due_at=due_at, payload=payload or {}, scheduled_at=self.clock())

    async def write(self, timer: Timer) -> Timer:
        doc = await self.docs.upsert(TIMERS, timer.bucket, timer.id, timer.body())
        if self._cursor is not None and timer.bucket < self._cursor:
            self._cursor = timer.bucket
        return Timer.from_document(doc)

    async def schedule(
        self, tenant_id: str, session_id: str, kind: str, *, delay: float,
        payload: dict[str, Any] | None = None,
    ) -> Timer:
        return await self.write(self.plan(tenant_id, session_id, kind, delay=delay,
                                          payload=payload))

    async def get(self, timer: Timer) -> Timer | None:
        doc = await self.docs.read(TIMERS, timer.bucket, timer.id)
        return Timer.from_document(doc) if doc is not None else None

    async def cancel(self, key: str) -> bool:
        """Delete a timer early by its key (the session has already forgotten it)."""
        due_ms = key.rsplit(":", 1)[-1]
        if not due_ms.isdigit():
            return False
        return await self.docs.delete(TIMERS, bucket_of(int(due_ms) / 1000), key)

    async def due(self, limit: int = 50) -> list[Timer]:
        """Timers due by now, earliest first, without the ones another claim holds.

        Reads the buckets from the cursor to now's, one partition each; the cursor moves
        past a bucket only once nothing is left in it.
        """
        now = self.clock()
        current = bucket_of(now)
        if self._cursor is None:
            oldest = await self.docs.query(TIMERS, None, {}, order_by="due_at", limit=1)
            self._cursor = min(current, Timer.from_document(oldest[0]).bucket) if oldest else (
                current)
        out: list[Timer] = []
        bucket = self._cursor
        while bucket <= current and len(out) < limit:
            docs = await self.docs.query(
                TIMERS, bucket, {}, at_most={"due_at": now}, order_by="due_at",
                limit=limit - len(out),
            )
            timers = [Timer.from_document(d) for d in docs]
            out.extend(t for t in timers if not t.leased(now))
            if bucket == self._cursor and bucket < current and not timers:
                # nothing due is left in a past bucket: nothing will be (timers are not
                # scheduled into the past), so the poll need not read it again
                self._cursor = _next_bucket(bucket)
            bucket = _next_bucket(bucket)
        return out

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
            doc = await self.docs.replace(TIMERS, timer.bucket, timer.id, claimed.body(),
                                          timer.etag)
        except (PreconditionFailed, NotFound):
            return None
        return Timer.from_document(doc)

    async def finish(self, timer: Timer) -> None:
        """Delete the fired timer, unless it was changed meanwhile."""
        with contextlib.suppress(PreconditionFailed, NotFound):
            await self.docs.delete(TIMERS, timer.bucket, timer.id, timer.etag)

    async def release(self, timer: Timer, *, delay: float = 0.0) -> None:
        """After a handler error: free it for a retry, or drop it after `max_attempts`."""
        with contextlib.suppress(PreconditionFailed, NotFound):
            if timer.attempts >= self.max_attempts:
                await self.docs.delete(TIMERS, timer.bucket, timer.id, timer.etag)
                log.error(
                    "%s dropped after %d failed attempts",
                    timer.describe(),
                    timer.attempts,
                    extra={"timer_id": timer.id, "tenant_id": timer.tenant_id},
                )
                return
            freed = timer.model_copy(update={
                "lease_owner": None if delay <= 0 else self.owner,
                "lease_until": None if delay <= 0 else self.clock() + delay,
            })
            await self.docs.replace(TIMERS, timer.bucket, timer.id, freed.body(), timer.etag)


class NotYet(Exception):
    """The handler cannot act yet (the write that wants the timer has not landed): retry soon."""


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
        self._busy = asyncio.Lock()
        self._stopping: asyncio.Event | None = None

    async def run_once(self) -> int:
        """Fire what is due now; how many handlers completed. Handler errors stay here."""
        async with self._busy:
            fired = 0
            for timer in await self.timers.due():
                claimed = await self.timers.claim(timer)
                if claimed is None:
                    continue  # another instance has it
                try:
                    await self.handler(claimed)
                except NotYet:
                    await self.timers.release(claimed, delay=1.0)
                    continue
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
            self._stopping = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(self._loop(), name="timers")

    async def stop(self, grace: float = 30.0) -> None:
        """Stop polling. A poll under way finishes first (within `grace` seconds, then it is
        cancelled: a timer cut off mid-handler fires again when its lease runs out)."""
        task, self._task = self._task, None
        if self._stopping is not None:
            self._stopping.set()
        if task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(task), grace)
            except TimeoutError:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        async with self._busy:
            pass

    async def _loop(self) -> None:
        stopping = self._stopping
        assert stopping is not None
        while not stopping.is_set():
            try:
                await self.run_once()
            except Exception:
                # the store may be briefly unavailable: keep polling
                log.warning("timer poll failed", exc_info=True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), self.interval)
