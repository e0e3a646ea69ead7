"""Delivering what the bot owes: every message is recorded as due before it is sent.

A message is a transcript line addressed to someone (storage/models.py). The write that
records a state change records the messages it causes in the same batch, and adds them to
the session's `owed` list with a lease: (owner, until). The writer then delivers them here,
in order, one at a time:

- each message is marked (its line: sent / failed / skipped) before the next one is sent, so
  that after a crash the first message still due is the only one that can have been in
  flight; the last one is marked once it is on its way;
- the session's `owed` list is not rewritten for that: this process remembers what it
  delivered and drops it from `owed` in the session's next write, which the next turn makes
  anyway. A session whose conversation goes quiet keeps its stale `owed` until the sweep
  finds it (its lease run out), reads the lines, sees them marked and drops them: one write,
  after the conversation's last turn instead of after every turn. A delivery that failed is
  written to the session at once (`undelivered`).

Recovery (`recover`): messages whose lease has run out, or whose owner is known to be dead
(this instance restarted: same instance name, another incarnation), are claimed with a
session write (If-Match) and delivered by the claimer. The first message still due of each
earlier owner is unknowable (its send may have reached the channel before the crash): it is
sent again only when someone must act on it (a card with inputs or buttons), otherwise it is
skipped. An offer for a chat no longer waiting for that agent is skipped, and so is an update
of a card that was never sent. Nothing else is ever sent twice.

The owner never sends after its lease: each send is bounded by the lease's end, and a run
that reaches it stops and leaves the rest to recovery.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import telemetry
from storage.models import Delivery, Owed, Phase, Session, TranscriptEntry, Undelivered
from storage.sessions import SessionConflict, SessionStore

log = logging.getLogger("switchboard.delivery")

# stop this long before the lease ends: a send started later could outlive it
LEASE_MARGIN = 2.0
# how long an update waits for the card it replaces to be sent by another owner
UPDATE_WAIT = 5.0
# sessions whose delivered messages this process remembers, to drop from `owed` later
SETTLED_KEPT = 20_000


class SendUnknown(Exception):
    """The channel may or may not have the message (a timeout, a 5xx, a dropped connection)."""


class SendFailed(Exception):
    """The channel refused the message (4xx), or throttled it past the retry budget."""


class Channel(Protocol):
    """How messages reach Teams (bots/messenger.py)."""

    async def send(self, reference: dict[str, Any], text: str | None,
                   card: dict[str, Any] | None, reply_to: str | None,
                   budget: float | None) -> str | None:
        """Post a message; the id the channel gave it. `budget`: seconds it may take,
        retries included. Raises SendUnknown or SendFailed."""

    async def update(self, reference: dict[str, Any], activity_id: str,
                     card: dict[str, Any], budget: float | None) -> None:
        """Replace a card sent earlier (a Teams message update)."""


@dataclass(frozen=True, slots=True)
class Owner:
    """Who holds a lease: `<instance>/<incarnation>`. The instance name survives a restart
    (a host name, App Service's instance id); the incarnation is new for every process."""

    instance: str
    incarnation: str

    @property
    def name(self) -> str:
        return f"{self.instance}/{self.incarnation}"

    def dead(self, owner: str) -> bool:
        """An earlier process of this same instance: it cannot still be sending."""
        instance, _, incarnation = owner.rpartition("/")
        return instance == self.instance and incarnation != self.incarnation


@dataclass(slots=True)
class Report:
    session: Session
    sent: int = 0
    failed: int = 0
    skipped: int = 0


class Deliverer:
    def __init__(
        self,
        sessions: SessionStore,
        channel: Channel,
        owner: Owner,
        *,
        clock: Callable[[], float] = time.time,
        lease_seconds: float = 60.0,
    ) -> None:
        self.sessions = sessions
        self.channel = channel
        self.owner = owner
        self.clock = clock
        self.lease_seconds = lease_seconds
        # session id -> the seqs this process delivered and marked, not yet dropped from the
        # session's `owed` (its next write drops them)
        self._settled: OrderedDict[str, set[int]] = OrderedDict()
        # test hook: called with ("send"|"mark"|"settle", line) before each step
        self.fault: Callable[[str, TranscriptEntry], None] | None = None

    def lease(self) -> Owed:
        """A lease for messages about to be recorded (`seq` filled in by the caller)."""
        return Owed(seq=-1, owner=self.owner.name, until=self.clock() + self.lease_seconds)

    def owe(self, session: Session, lines: list[TranscriptEntry]) -> list[TranscriptEntry]:
        """Before a session's write: drop from its `owed` what this process delivered, add
        the messages among `lines`, leased to us; return those."""
        self.prune(session)
        lease = self.lease()
        messages = [line for line in lines if line.to is not None and
                    line.status == Delivery.DUE]
        session.owed = [*session.owed, *(lease.model_copy(update={"seq": m.seq})
                                         for m in messages)]
        return messages

    def prune(self, session: Session) -> None:
        """Drop from the session's `owed` what this process knows it delivered."""
        done = self._settled.get(session.id)
        if done:
            session.owed = [o for o in session.owed if o.seq not in done]
            gone = done - {o.seq for o in session.owed}
            if gone == done:
                del self._settled[session.id]

    def _forget(self, session_id: str, seqs: set[int]) -> None:
        done = self._settled.get(session_id)
        if done is not None:
            done -= seqs
            if not done:
                del self._settled[session_id]

    def _remember(self, session: Session, seqs: set[int]) -> None:
        if not seqs:
            return
        self._settled.setdefault(session.id, set()).update(seqs)
        self._settled.move_to_end(session.id)
        while len(self._settled) > SETTLED_KEPT:
            self._settled.popitem(last=False)

    # -- delivering what we just recorded ------------------------------------------------

    async def deliver(self, session: Session, messages: list[TranscriptEntry]) -> Report:
        """Send `messages` (leased to us in `session.owed`), in order; mark each; settle."""
        report = Report(session)
        if not messages:
            return report
        until = min((o.until for o in session.owed
                     if o.owner == self.owner.name and o.seq in {m.seq for m in messages}),
                    default=self.clock() + self.lease_seconds)
        await self._run(report, sorted(messages, key=lambda m: m.seq), until, unknown=set())
        return report

    # -- recovering what someone else (or a dead process) left --------------------------

    def claimable(self, session: Session, *, include_mine: bool = False) -> list[Owed]:
        now = self.clock()
        done = self._settled.get(session.id, set())
        return [o for o in session.owed if o.seq not in done and (
            o.until <= now or self.owner.dead(o.owner)
            or (include_mine and o.owner == self.owner.name))]

    def needs_recovery(self, session: Session) -> bool:
        """Something the session owes is claimable, or known delivered but still listed."""
        done = self._settled.get(session.id, set())
        return bool(self.claimable(session)) or any(o.seq in done for o in session.owed)

    def in_flight(self, session: Session) -> bool:
        """Some message the session owes is not known delivered here and not claimable:
        a live process is sending it (what comes after it must wait)."""
        done = self._settled.get(session.id, set())
        claim = {o.seq for o in self.claimable(session)}
        return any(o.seq not in done and o.seq not in claim for o in session.owed)

    async def recover(self, session: Session, *, include_mine: bool = False,
                      write: bool = True) -> Report:
        """Deliver what the session owes whose lease has run out (and, with `include_mine`,
        what this process leased and has not delivered: recovery's own).

        The lines are read first: those already marked (and those this process knows it
        delivered) are only dropped from `owed`; the ones still due are claimed (a new lease)
        in the same session write, then sent. With nothing to send and `write` False, the
        drop is left to the caller's own coming write of the session.
        """
        report = Report(session)
        for _ in range(5):
            done_here = self._settled.get(session.id, set()) & {o.seq for o in session.owed}
            claim = self.claimable(session, include_mine=include_mine)
            if not claim and not done_here:
                return report
            previous = {o.seq: o.owner for o in claim}
            lines = await self.sessions.entries(session, sorted(previous)) if previous else {}
            due = {s for s in previous if s in lines and lines[s].status == Delivery.DUE}
            resolved = (set(previous) - due) | done_here
            until = self.clock() + self.lease_seconds
            session.owed = [
                o.model_copy(update={"owner": self.owner.name, "until": until})
                if o.seq in due else o
                for o in session.owed if o.seq not in resolved
            ]
            if not due and not write:
                report.session = session
                return report
            try:
                session = await self.sessions.save(session)
                self._forget(session.id, done_here)
                break
            except SessionConflict:
                fresh = await self.sessions.get(session.tenant_id, session.id)
                if fresh is None:
                    return report
                session = fresh
        else:
            return report
        report.session = session
        if not due:
            return report
        # each earlier owner had at most one message in flight: its first one still due
        unknown: set[int] = set()
        firsts: dict[str, int] = {}
        for seq in sorted(due):
            mine = previous[seq] == self.owner.name  # leased by this process, not yet sent
            if not mine and previous[seq] not in firsts:
                firsts[previous[seq]] = seq
                unknown.add(seq)
        log.info("recovering owed messages", extra={
            "session": session.id, "due": len(due), "in_flight_unknown": len(unknown)})
        await self._run(report, [lines[s] for s in sorted(due)], until, unknown=unknown)
        return report

    # -- the run ----------------------------------------------------------------------

    async def _run(self, report: Report, messages: list[TranscriptEntry], until: float, *,
                   unknown: set[int]) -> None:
        done: list[TranscriptEntry] = []
        for index, message in enumerate(messages):
            if self.clock() > until - LEASE_MARGIN:
                log.warning("delivery lease ran out: recovery will send the rest",
                            extra={"session": report.session.id, "left": len(messages) - index})
                break
            line = await self._one(report, message, until, maybe_sent=message.seq in unknown)
            self._fault("mark", line)
            await self.sessions.mark(line)
            done.append(line)
        self._remember(report.session, {line.seq for line in done})
        failed = [line for line in done if line.status == Delivery.FAILED]
        telemetry.undelivered(report.session.tenant_id, len(failed))
        if failed:
            await self._record_failures(report, failed)

    async def _one(self, report: Report, line: TranscriptEntry, until: float, *,
                   maybe_sent: bool) -> TranscriptEntry:
        session = report.session
        deadline = until - LEASE_MARGIN
        if maybe_sent and not line.actionable:
            report.skipped += 1
            return _resolved(line, Delivery.SKIPPED, "may have been sent before a restart")
        if line.purpose == "offer" and not _offer_open(session, line):
            report.skipped += 1
            return _resolved(line, Delivery.SKIPPED, "the chat is no longer offered to them")
        self._fault("send", line)
        try:
            if line.update_of is not None:
                replaced = await self._sent_line(session, line.update_of, deadline)
                if replaced is None or replaced.activity_id is None:
                    report.skipped += 1
                    return _resolved(line, Delivery.SKIPPED, "the card it updates was not sent")
                reference = _reference(session, replaced) or _reference(session, line)
                if not reference:
                    report.failed += 1
                    return _resolved(line, Delivery.FAILED, "no conversation reference")
                await self.channel.update(reference, replaced.activity_id, line.card or {},
                                          max(0.5, deadline - self.clock()))
                activity_id = replaced.activity_id
            else:
                reference = _reference(session, line)
                if not reference:
                    report.failed += 1
                    return _resolved(line, Delivery.FAILED,
                                     "no conversation reference to reach them")
                activity_id = await self._send(line, reference, deadline)
        except SendFailed as exc:
            report.failed += 1
            log.warning("a message could not be delivered", extra={
                "session": session.id, "to": line.to, "reason": str(exc)[:300]})
            return _resolved(line, Delivery.FAILED, str(exc)[:500])
        except SendUnknown as exc:
            report.skipped += 1
            log.warning("a message's delivery is unknown", extra={
                "session": session.id, "to": line.to, "reason": str(exc)[:300]})
            return _resolved(line, Delivery.SKIPPED, f"outcome unknown: {exc}"[:500])
        report.sent += 1
        return line.model_copy(update={"status": Delivery.SENT, "activity_id": activity_id,
                                       "error": None})

    async def _send(self, line: TranscriptEntry, reference: dict[str, Any],
                    deadline: float) -> str | None:
        try:
            return await self.channel.send(reference, line.text, line.card, line.reply_to,
                                           max(0.5, deadline - self.clock()))
        except SendUnknown:
            if not line.actionable:
                raise
            # someone must act on it: better twice than never (once more, after a pause)
            await asyncio.sleep(0.5)
            return await self.channel.send(reference, line.text, line.card, line.reply_to,
                                           max(0.5, deadline - self.clock()))

    async def _sent_line(self, session: Session, seq: int,
                         deadline: float) -> TranscriptEntry | None:
        """Line `seq` once sent, waiting a little while its owner still sends it."""
        waited = 0.0
        while True:
            lines = await self.sessions.entries(session, [seq])
            line = lines.get(seq)
            if line is None or line.status in (Delivery.FAILED, Delivery.SKIPPED):
                return None
            if line.activity_id and line.status == Delivery.SENT:
                return line
            if waited >= UPDATE_WAIT or self.clock() >= deadline:
                return None
            await asyncio.sleep(0.2)
            waited += 0.2

    async def _record_failures(self, report: Report, failed: list[TranscriptEntry]) -> None:
        """A message that could not be delivered is kept on the session, for the record."""
        session = report.session
        for _ in range(8):
            self.prune(session)
            session.undelivered = [*session.undelivered, *(
                Undelivered(error=line.error or "", text=line.text, card=line.card)
                for line in failed)][-20:]
            try:
                report.session = await self.sessions.save(session)
                return
            except SessionConflict:
                fresh = await self.sessions.get(session.tenant_id, session.id)
                if fresh is None:
                    return
                session = fresh
        log.warning("could not record an undelivered message: the session kept changing",
                    extra={"session": session.id})

    def _fault(self, step: str, line: TranscriptEntry) -> None:
        if self.fault is not None:
            self.fault(step, line)


def _reference(session: Session, line: TranscriptEntry) -> dict[str, Any] | None:
    return session.reference if line.to == "guest" else line.reference


def _resolved(line: TranscriptEntry, status: Delivery, why: str) -> TranscriptEntry:
    return line.model_copy(update={"status": status, "error": why})


def _offer_open(session: Session, line: TranscriptEntry) -> bool:
    routing = session.routing
    if session.phase != Phase.WAITING or routing is None:
        return False
    return any(o.seq == line.seq and o.status == "open" for o in routing.offers)
