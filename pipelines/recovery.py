"""Finishing what a crash left half-done: an explicit step, never a side effect of a read.

Before a conversation's next activity is handled (and on a redelivery of one already
handled), `settle` finishes a rehome left `transferring`, and delivers the messages the
session owes whose lease has run out or whose owner died. The `sweep`, which one instance
at a time runs every few seconds (a lease in the `config` container), does the same for
every session that needs it, so a guest or agent who never writes again still gets the
message they must act on: the transfers left half-done (and the first prompt of the
receiving department), and the sessions owing messages past their lease.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from pipelines.delivery import Deliverer
from pipelines.engine import Engine
from storage.documents import AlreadyExists, DocumentStore, PreconditionFailed
from storage.layout import CONFIG
from storage.models import Session, SessionState
from storage.rehome import finish_if_half_done, half_done
from storage.sessions import SessionConflict, SessionStore

log = logging.getLogger("switchboard.recovery")

SWEEP_LEASE_ID = "sweep-lease"


class Recovery:
    def __init__(self, engine: Engine, deliverer: Deliverer, *,
                 clock: Callable[[], float] = time.time) -> None:
        self.engine = engine
        self.deliverer = deliverer
        self.clock = clock

    @property
    def sessions(self) -> SessionStore:
        return self.engine.store

    async def settle(self, session: Session) -> Session:
        """The conversation's session with anything a crash left finished (cheap when
        there is nothing: no store call)."""
        if session.state == SessionState.TRANSFERRING or (
            not session.started and session.hop_log
        ):
            if session.state == SessionState.TRANSFERRING and self.deliverer.claimable(session):
                session = (await self.deliverer.recover(session)).session
            before = session
            session = await finish_if_half_done(self.sessions, session,
                                                owner=self.deliverer.owner.name)
            if session is not before:
                session = await self._delivered(session)
        if self.deliverer.needs_recovery(session):
            # what is marked delivered is dropped by the turn's own write, coming next
            session = (await self.deliverer.recover(session, write=False)).session
        return session

    async def _delivered(self, target: Session) -> Session:
        """A target recovery just created owes its transfer card (leased to us): send it."""
        log.warning("finished a transfer a crash had left half-done",
                    extra={"session": target.id})
        return (await self.deliverer.recover(target, include_mine=True)).session

    async def sweep(self, limit: int = 100) -> int:
        """Settle what needs it everywhere; how many sessions a crash had left owing (their
        messages sent, or judged; a transfer finished; a first prompt given)."""
        done = 0
        for session in await half_done(self.sessions, limit):
            try:
                if self.deliverer.claimable(session):
                    session = (await self.deliverer.recover(session)).session
                target = await self._delivered(await finish_if_half_done(
                    self.sessions, session, owner=self.deliverer.owner.name))
                if not target.started and target.state.live:
                    await self.engine.resume(target)
                done += 1
            except SessionConflict:
                continue  # someone else is at it
        for session in await self.sessions.owing(limit=limit):
            try:
                if self.deliverer.needs_recovery(session):
                    report = await self.deliverer.recover(session)
                    session = report.session
                    # a chat's last messages, delivered and only still listed, are dropped
                    # from what it owes here: that is tidying, not recovering
                    if report.sent or report.failed or report.skipped:
                        done += 1
                if session.awaiting_start and not self.deliverer.in_flight(session):
                    # a crash came between its transfer card and its first prompt
                    await self.engine.resume(session)
                    done += 1
            except SessionConflict:
                continue  # someone else is at it
        return done


class SweepLease:
    """One instance sweeps at a time: a lease document, taken If-Match."""

    def __init__(self, docs: DocumentStore, owner: str, *, seconds: float,
                 clock: Callable[[], float] = time.time,
                 dead: Callable[[str], bool] = lambda owner: False) -> None:
        self.docs = docs
        self.owner = owner
        self.seconds = seconds
        self.clock = clock
        self.dead = dead

    async def take(self) -> bool:
        now = self.clock()
        body = {"type": "lease", "owner": self.owner, "until": now + self.seconds}
        doc = await self.docs.read(CONFIG, SWEEP_LEASE_ID, SWEEP_LEASE_ID)
        try:
            if doc is None:
                await self.docs.create(CONFIG, SWEEP_LEASE_ID, SWEEP_LEASE_ID, body)
                return True
            holder = str(doc.body.get("owner", ""))
            if holder != self.owner and float(doc.body.get("until", 0)) > now and not (
                self.dead(holder)
            ):
                return False
            await self.docs.replace(CONFIG, SWEEP_LEASE_ID, SWEEP_LEASE_ID, body, doc.etag)
            return True
        except (AlreadyExists, PreconditionFailed):
            return False
