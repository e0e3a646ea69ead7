"""Delivering what the bot owes: every message is recorded as due before it is sent.

A message is a transcript line addressed to someone (storage/models.py). The write that
records a state change records the messages it causes in the same batch, and adds them to
the session's `owed` list with a lease: (owner, until). The writer then delivers them here,
in order, one at a time:

- each message but the last is marked (its line: sent / failed / skipped) before the next
  one is sent, so that after a crash the first message still due is the only one that can
  have been in flight;
- the last one is marked together with the session's write that drops everything delivered
  from `owed` (one batch, after the message is on its way).

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
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from storage.models import Delivery, Owed, Phase, Session, TranscriptEntry, Undelivered
from storage.sessions import SessionConflict, SessionStore

log = logging.getLogger("switchboard.delivery")

# stop this long before the lease ends: a send started later could outlive it
LEASE_MARGIN = 2.0
# how long an update waits for the card it replaces to be sent by another owner
UPDATE_WAIT = 5.0


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
        # test hook: called with ("send"|"mark"|"settle", line) before each step
        self.fault: Callable[[str, TranscriptEntry], None] | None = None

    def lease(self) -> Owed:
        """A lease for messages about to be recorded (`seq` filled in by the caller)."""
        return Owed(seq=-1, owner=self.owner.name, until=self.clock() + self.lease_seconds)

    def owe(self, session: Session, lines: list[TranscriptEntry]) -> list[TranscriptEntry]:
        """Add the messages among `lines` to the session's `owed`, leased to us; them."""
        lease = self.lease()
        messages = [line for line in lines if line.to is not None and
                    line.status == Delivery.DUE]
        session.owed = [*session.owed, *(lease.model_copy(update={"seq": m.seq})
                                         for m in messages)]
        return messages

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
        return [o for o in session.owed if o.until <= now or self.owner.dead(o.owner)
                or (include_mine and o.owner == self.owner.name)]

    async def recover(self, session: Session, *, include_mine: bool = False) -> Report:
        """Claim and deliver what the session owes whose lease has run out (and, with
        `include_mine`, what this process leased and has not delivered: recovery's own)."""
        report = Report(session)
        for _ in range(5):
            claim = self.claimable(session, include_mine=include_mine)
            if not claim:
                return report
            until = self.clock() + self.lease_seconds
            claimed = {o.seq for o in claim}
            previous = {o.seq: o.owner for o in claim}
            session.owed = [
                o.model_copy(update={"owner": self.owner.name, "until": until})
                if o.seq in claimed else o
                for o in session.owed
            ]
            try:
                session = await self.sessions.save(session)
                break
            except SessionConflict:
                fresh = await self.sessions.get(session.tenant_id, session.id)
                if fresh is None:
                    return report
                session = fresh
        else:
            return report
        report.session = session
        lines = await self.sessions.entries(session, sorted(claimed))
        # each earlier owner had at most one message in flight: its first one still due
        unknown: set[int] = set()
        firsts: dict[str, int] = {}
        for seq in sorted(lines):
            line = lines[seq]
            mine = previous[seq] == self.owner.name  # leased by this process, not yet sent
            if line.status == Delivery.DUE and not mine and previous[seq] not in firsts:
                firsts[previous[seq]] = seq
                unknown.add(seq)
        due = [lines[s] for s in sorted(lines) if lines[s].status == Delivery.DUE]
        settled = [s for s in claimed if s not in lines or lines[s].status != Delivery.DUE]
        log.info("recovering owed messages", extra={
            "session": session.id, "due": len(due), "in_flight_unknown": len(unknown)})
        await self._run(report, due, until, unknown=unknown, settled=settled)
        return report

    # -- the run ----------------------------------------------------------------------

    async def _run(self, report: Report, messages: list[TranscriptEntry], until: float, *,
                   unknown: set[int], settled: list[int] = ()) -> None:
        done: list[TranscriptEntry] = []
        for index, message in enumerate(messages):
            if self.clock() > until - LEASE_MARGIN:
                log.warning("delivery lease ran out: recovery will send the rest",
                            extra={"session": report.session.id, "left": len(messages) - index})
                break
            line = await self._one(report, message, until, maybe_sent=message.seq in unknown)
            done.append(line)
            if index < len(messages) - 1:
                self._fault("mark", line)
                await self.sessions.mark(line)
        await self._settle(report, done, list(settled))

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

    async def _settle(self, report: Report, done: list[TranscriptEntry],
                      settled: list[int]) -> None:
        """Drop the delivered messages from `owed`, with the last one's mark (one batch)."""
        seqs = {line.seq for line in done} | set(settled)
        if not seqs:
            return
        last = done[-1] if done else None
        failures = [Undelivered(error=line.error or "", text=line.text, card=line.card)
                    for line in done if line.status == Delivery.FAILED]
        if last is not None:
            self._fault("settle", last)
        session = report.session
        for _ in range(8):
            session.owed = [o for o in session.owed if o.seq not in seqs]
            if failures:
                session.undelivered = [*session.undelivered, *failures][-20:]
            try:
                report.session = await self.sessions.save(
                    session, [last] if last is not None else []
                )
                return
            except SessionConflict:
                fresh = await self.sessions.get(session.tenant_id, session.id)
                if fresh is None:
                    return
                session = fresh
        log.warning("could not record deliveries: the session kept changing; recovery will "
                    "find them marked", extra={"session": session.id})
        if last is not None:
            await self.sessions.mark(last)

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
