"""The engine: walks a session through its pipeline's stages.

One `Turn` is one thing that happens to a session: an activity from the guest, an agent's
action, a timer. The engine asks the current stage's action what to do, follows the
outcomes (next stage, wait, close, transfer), and then writes, in one batch, the session
(If-Match its ETag), its new transcript lines, and the messages they cause (lines addressed to
the guest or an agent, recorded as due before anything is sent). Only then are the messages
delivered (pipelines/delivery.py). A turn that loses a race with another instance has sent
nothing and is redone on the new state; a crash before the write loses nothing that was
promised; a crash after it leaves messages owed, which recovery delivers.

A transfer writes its intent on the sending session (with that turn's lines), runs the
receiving tenant's first stages on the new session in memory, and then creates it with its
lines in one batch (storage/rehome.py has the steps).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import telemetry
from cards.actionable import actionable
from cards.binding import bind, bind_text
from pipelines.actions import get_action
from pipelines.actions.base import Close, Goto, GuestInput, Outcome, Transfer, Wait
from pipelines.config import PipelineConfig, StageConfig, SwitchboardConfig, TenantConfig
from pipelines.delivery import Deliverer, Report
from storage.models import (
    Delivery,
    Direction,
    MetadataValue,
    Session,
    SessionState,
    TranscriptEntry,
    utcnow,
)
from storage.rehome import (
    TransferRefused,
    finish_rehome,
    mark_intent,
    target_of,
    transfer_card_line,
)
from storage.sessions import SessionConflict, SessionStore, new_session_id
from storage.timers import Timer, TimerStore

if TYPE_CHECKING:
    from pipelines.routing.protocols import RoutingService

log = logging.getLogger(__name__)

# stages one turn may pass through before the engine calls it a loop in the config
MAX_STEPS_PER_TURN = 100
# times a turn is redone when another instance wrote the session first
MAX_ATTEMPTS = 8


@dataclass
class TurnResult:
    session: Session | None
    # for Action.Execute: the card that replaces the pressed one
    replace_card: dict[str, Any] | None = None
    sent: int = 0
    events: list[str] = field(default_factory=list)
    # whatever a step returned (an agent command's answer, an accepted card...)
    value: Any = None


class Turn:
    """The StageContext an action sees, plus the bookkeeping of one turn."""

    def __init__(self, engine: Engine, session: Session, *, reply_to: str | None = None,
                 new: bool = False) -> None:
        self.engine = engine
        self.config = engine.config
        self.session = session
        self.reply_to = reply_to
        self.entries: list[TranscriptEntry] = []
        self.after: list[Callable[[], Awaitable[None]]] = []
        self.replace_card: dict[str, Any] | None = None
        self.use_execute = engine.use_execute
        self.sent = 0
        self.events: list[str] = []
        self.planned: list[Timer] = []
        self.dropped: list[str] = []
        # a session not stored yet: the conversation's first, or a transfer's target (with
        # the sending session whose rehome its creation finishes)
        self.new = new
        self.rehome_source: Session | None = None
        self.value: Any = None
        self.records: dict[str, dict[str, Any]] = {}

    @property
    def tenant(self) -> TenantConfig:
        return self.config.tenant(self.session.tenant_id)

    @property
    def pipeline(self) -> PipelineConfig:
        return self.tenant.pipeline(self.session.pipeline_id)

    @property
    def stage(self) -> StageConfig:
        return self.pipeline.stage(self.session.stage_key or self.pipeline.first.key)

    # -- StageContext ----------------------------------------------------------------

    def values(self) -> dict[str, Any]:
        tenant = self.tenant
        return {**self.session.metadata, "Tenant.Id": tenant.id, "Tenant.Name": tenant.name}

    def bind(self, template: dict[str, Any]) -> dict[str, Any]:
        return bind(template, self.values())

    def bind_text(self, text: str) -> str:
        # always text, even when the whole text is one `${...}` of a number
        return bind_text(text, self.values())

    def template(self, stage: StageConfig, setting: str) -> dict[str, Any]:
        return self.config.template(self.tenant.id, self.pipeline.id, stage.key, setting)

    def set_metadata(self, key: str, value: MetadataValue) -> None:
        self.session.metadata[key] = value

    def after_persist(self, job: Callable[[], Awaitable[None]]) -> None:
        self.after.append(job)

    @property
    def routing(self) -> RoutingService:
        if self.engine.routing is None:
            raise RuntimeError("live-agent routing is not set up")
        return self.engine.routing

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.engine.clock(), UTC)

    async def send_card(self, card: dict[str, Any]) -> None:
        self.message("guest", card=card)

    async def send_text(self, text: str) -> None:
        self.message("guest", text=text)

    # -- messages, timers -------------------------------------------------------------

    def message(
        self,
        to: str,
        *,
        text: str | None = None,
        card: dict[str, Any] | None = None,
        reference: dict[str, Any] | None = None,
        sender: str = "bot",
        purpose: str | None = None,
        update_of: int | None = None,
        visible: bool | None = None,
    ) -> TranscriptEntry:
        """A message owed to "guest" or "agent:<id>", recorded as a line of this session."""
        to_guest = to == "guest"
        return self.record(
            Direction.OUT, sender, text=text, card=card, to=to,
            reference=None if to_guest else reference,
            reply_to=self.reply_to if to_guest and update_of is None else None,
            purpose=purpose, update_of=update_of, actionable=actionable(card),
            visible=to_guest if visible is None else visible, status=Delivery.DUE,
        )

    def keep(self, name: str, body: dict[str, Any]) -> None:
        """A record of this session's (`type` in the body), written in this turn's batch and
        kept as long as its transcript; the same name replaces it (storage/sessions.py)."""
        self.records[name] = body

    def schedule(self, kind: str, delay: float, payload: dict[str, Any] | None = None) -> None:
        """A timer this session wants; written before the session, fired later."""
        timers = self.engine.timers
        if timers is None:
            raise RuntimeError("timers are not set up")
        old = self.session.timers.get(kind)
        if old is not None:
            self.dropped.append(old)
        timer = timers.plan(self.session.tenant_id, self.session.id, kind, delay=delay,
                            payload=payload)
        self.planned = [t for t in self.planned if t.kind != kind] + [timer]
        self.session.timers[kind] = timer.key

    def cancel_timers(self, kinds: list[str] | None = None) -> None:
        """Forget the session's timers (all, or these kinds); their documents go after."""
        for kind in list(self.session.timers):
            if kinds is None or kind in kinds:
                self.dropped.append(self.session.timers.pop(kind))
        self.planned = [t for t in self.planned if t.kind in self.session.timers]

    # -- bookkeeping -----------------------------------------------------------------

    def record(self, direction: Direction, sender: str, **fields: Any) -> TranscriptEntry:
        session = self.session
        line = TranscriptEntry(
            session_id=session.id,
            tenant_id=session.tenant_id,
            seq=session.transcript_count,
            direction=direction,
            sender=sender,
            ttl=self.engine.store.retention_seconds,
            **fields,
        )
        self.entries.append(line)
        session.transcript_count += 1
        return line

    async def persist(self) -> None:
        """Write the session, its new lines and messages owed; then deliver them."""
        engine = self.engine
        deliverer = engine.deliverer
        messages = deliverer.owe(self.session, self.entries) if deliverer else []
        await engine.write_timers(self.planned)
        self.planned = []
        entries, self.entries = self.entries, []
        records, self.records = self.records, {}
        if self.rehome_source is not None:
            source, self.rehome_source = self.rehome_source, None
            self.session = await finish_rehome(engine.store, source, target=self.session,
                                               entries=entries, records=records)
        elif self.new:
            self.session = await engine.store.begin(self.session, entries, records)
        else:
            self.session = await engine.store.save(self.session, entries, records)
        self.new = False
        if deliverer is not None and messages:
            report = await deliverer.deliver(self.session, messages)
            self.session = report.session
            self.sent += report.sent


class Engine:
    def __init__(
        self,
        config: SwitchboardConfig,
        store: SessionStore,
        *,
        use_execute: bool = False,
        clock: Callable[[], float] = time.time,
        deliverer: Deliverer | None = None,
        timers: TimerStore | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.use_execute = use_execute
        # epoch seconds; injected so tests (business hours, timers) never read the wall clock
        self.clock = clock
        self.deliverer = deliverer
        self.timers = timers
        # set by the app: live-agent routing (pipelines/routing)
        self.routing: RoutingService | None = None
        # set by the app: run the timer poll now (a timer due at once was just written)
        self.kick: Callable[[], None] = lambda: None

    # -- entry points ----------------------------------------------------------------

    def new_session(self, conversation_id: str, guest: dict[str, MetadataValue],
                    reference: dict[str, Any], *, tenant_id: str | None = None,
                    session_id: str | None = None) -> Session:
        tenant = self.config.tenant(tenant_id or self.config.primary_tenant)
        session_id = session_id or new_session_id()
        now = utcnow()
        return Session(
            id=session_id,
            tenant_id=tenant.id,
            conversation_id=conversation_id,
            pipeline_id=tenant.primary_pipeline,
            stage_key=tenant.primary.first.key,
            started=False,
            created_at=now,
            reference=reference,
            metadata={
                **guest,
                "Session.Id": session_id,
                "Session.TenantId": tenant.id,
                "Session.TenantName": tenant.name,
                "Session.StartedAt": now,
                "Session.Hops": 0,
            },
        )

    async def start(
        self,
        conversation_id: str,
        guest: dict[str, MetadataValue],
        reference: dict[str, Any],
        tenant_id: str | None = None,
        first: GuestInput | None = None,
        activity_id: str | None = None,
        first_text: str | None = None,
    ) -> TurnResult:
        """A new session in the primary tenant (or `tenant_id`), run until it waits.

        Its id comes from the activity that started it, so a redelivery of that activity
        finds the session the first delivery wrote (storage/sessions.py `begin`).
        """
        activity_id = activity_id or (first.activity_id if first else None)
        session = self.new_session(
            conversation_id, guest, reference, tenant_id=tenant_id,
            session_id=new_session_id(conversation_id, activity_id) if activity_id else None,
        )
        session.mark_seen(activity_id)
        turn = Turn(self, session, reply_to=activity_id, new=True)
        if first is not None:
            turn.record(Direction.IN, "guest", text=first.text, value=first.value,
                        activity_id=first.activity_id)
        if first_text is not None:
            await turn.send_text(first_text)
        return await self._finish(turn, await self._resume(turn))

    async def handle(self, session: Session, guest: GuestInput,
                     name: str | None = None) -> TurnResult:
        """One activity from the guest, for their live session (seen: the caller checked)."""
        session.mark_seen(guest.activity_id)
        if name and not session.metadata.get("Guest.Name"):
            session.metadata["Guest.Name"] = name  # install events come without a name
        turn = Turn(self, session, reply_to=guest.activity_id)
        turn.record(Direction.IN, "guest", text=guest.text, value=guest.value,
                    activity_id=guest.activity_id)
        if not session.started:
            return await self._finish(turn, await self._resume(turn))
        # a card's button carries its session and (for stage cards) its stage
        if guest.session_id is not None and (
            guest.session_id != session.id
            or (guest.stage_key is not None and guest.stage_key != session.stage_key)
        ):
            await turn.send_text(STALE_CARD)
            turn.events.append("stale_card")
            return await self._finish(turn, Wait() if session.awaiting_input else None)
        action = get_action(turn.stage.action)
        if session.awaiting_input:
            outcome = await action.receive(turn, turn.stage, guest)
        else:
            outcome = await action.enter(turn, turn.stage)
        return await self._finish(turn, outcome)

    async def reply_outside_pipeline(
        self,
        session: Session,
        guest: GuestInput,
        *,
        text: str | None = None,
        card: dict[str, Any] | None = None,
        close_as: SessionState | None = None,
        prepare: Callable[[Turn], None] | None = None,
    ) -> TurnResult:
        """A command's answer (help, restart): kept in the transcript, position unchanged."""
        session.mark_seen(guest.activity_id)
        turn = Turn(self, session, reply_to=guest.activity_id)
        turn.record(Direction.IN, "guest", text=guest.text, value=guest.value,
                    activity_id=guest.activity_id)
        if prepare is not None:
            prepare(turn)
        if card is not None:
            await turn.send_card(card)
        if text is not None:
            await turn.send_text(text)
        if close_as is not None:
            close(turn, close_as)
        await turn.persist()
        await self._after(turn)
        return TurnResult(turn.session, sent=turn.sent, events=turn.events)

    async def act(
        self,
        tenant_id: str,
        session_id: str,
        step: Callable[[Turn], Awaitable[Outcome | None]],
        *,
        key: str | None = None,
    ) -> TurnResult:
        """Change a session from outside a guest turn (an agent, a timer, a supervisor).

        Reads the session, runs `step` (which may change it, record lines and messages,
        schedule timers, and return an outcome to follow), writes it all If-Match, retried
        on the new state when another instance wrote first. `key` (an agent's activity, a
        timer) is recorded as handled in the same write: seen already, nothing is done.
        `step` raises to refuse; the refusal leaves the session untouched.
        """
        for _ in range(MAX_ATTEMPTS):
            session = await self.store.get(tenant_id, session_id)
            if session is None:
                raise LookupError(f"session {session_id} of {tenant_id} does not exist")
            if key is not None and session.saw(key):
                return TurnResult(session, events=["duplicate"])
            session.mark_seen(key)
            turn = Turn(self, session)
            outcome = await step(turn)
            try:
                return await self._finish(turn, outcome)
            except SessionConflict:
                continue
        raise SessionConflict(f"session {session_id} kept changing")

    async def resume(self, session: Session) -> TurnResult:
        """Enter the first stage of a session that has not started (a transfer's target that
        recovery created): the guest gets its first prompt without writing again."""
        turn = Turn(self, session)
        return await self._finish(turn, await self._resume(turn))

    # -- the walk --------------------------------------------------------------------

    async def _resume(self, turn: Turn) -> Outcome | None:
        session = turn.session
        if not session.started:
            session.started = True
            return await get_action(turn.stage.action).enter(turn, turn.stage)
        return Wait() if session.awaiting_input else None

    async def _finish(self, turn: Turn, outcome: Outcome | None) -> TurnResult:
        for _ in range(MAX_STEPS_PER_TURN):
            if outcome is None:
                break
            outcome = await self._follow(turn, outcome)
        else:
            log.error("pipeline loops without waiting", extra={"session": turn.session.id})
            await turn.send_text("Sorry, this help desk is misconfigured. Please try later.")
            close(turn, SessionState.ENDED)
        await turn.persist()
        await self._after(turn)
        return TurnResult(turn.session, turn.replace_card, turn.sent, turn.events, turn.value)

    async def _after(self, turn: Turn) -> None:
        if turn.dropped and self.timers is not None:
            dropped, turn.dropped = turn.dropped, []
            for key in dropped:
                try:
                    await self.timers.cancel(key)
                except Exception:  # it fires later and does nothing: only tidiness is lost
                    log.info("could not delete a cancelled timer", exc_info=True)
        jobs, turn.after = turn.after, []
        for job in jobs:
            try:
                await job()
            except Exception:  # the turn is done and saved; log, don't undo it
                log.exception("a follow-up of the turn failed", extra={"session": turn.session.id})

    async def write_timers(self, timers: list[Timer]) -> None:
        if not timers or self.timers is None:
            return
        await asyncio.gather(*(self.timers.write(t) for t in timers))
        if any(t.due_at <= self.clock() for t in timers):
            self.kick()

    async def _follow(self, turn: Turn, outcome: Outcome) -> Outcome | None:
        session = turn.session
        if isinstance(outcome, Wait):
            session.awaiting_input = True
            return None
        if isinstance(outcome, Goto):
            session.stage_key = outcome.key
            session.awaiting_input = False
            return await get_action(turn.stage.action).enter(turn, turn.stage)
        if isinstance(outcome, Close):
            if outcome.card is not None:
                await turn.send_card(outcome.card)
            close(turn, outcome.state)
            turn.events.append(f"closed:{outcome.state.value}")
            return None
        if isinstance(outcome, Transfer):
            return await self._transfer(turn, outcome)
        raise TypeError(f"unknown outcome {outcome!r}")

    async def _transfer(self, turn: Turn, outcome: Transfer) -> Outcome | None:
        session = turn.session
        target = self.config.tenant(outcome.tenant_id)
        limit = self.config.max_transfer_hops
        if session.hops >= limit:
            turn.events.append("hop_limit")
            await turn.send_text(
                f"This chat has already been transferred {session.hops} times without "
                f"reaching the right place, so I've stopped moving it to avoid going in "
                f"circles. You're still with {turn.tenant.name}. Type **restart** to begin again."
            )
            if outcome.on_hop_limit:
                return Goto(outcome.on_hop_limit)
            return Close(SessionState.HOP_LIMIT)
        if outcome.template is not None:
            template = outcome.template
        else:
            template = turn.template(turn.stage, outcome.template_setting)
        source_tenant = turn.tenant
        if turn.new or turn.rehome_source is not None:
            await turn.persist()  # a session not stored yet is written before it moves on
        deliverer = self.deliverer
        messages = deliverer.owe(turn.session, turn.entries) if deliverer else []
        await self.write_timers(turn.planned)
        turn.planned = []
        entries, turn.entries = turn.entries, []
        records, turn.records = turn.records, {}
        try:
            source = await mark_intent(
                self.store,
                turn.session,
                source_tenant_name=source_tenant.name,
                to_tenant_id=target.id,
                to_tenant_name=target.name,
                to_pipeline_id=outcome.pipeline_id or target.primary_pipeline,
                to_stage_key=outcome.stage_key or target.primary.first.key,
                card=lambda metadata: bind(
                    template, {**metadata, "Tenant.Id": target.id, "Tenant.Name": target.name}
                ),
                entries=entries,
                records=records,
                by=outcome.by,
                by_name=outcome.by_name,
            )
        except TransferRefused as exc:
            # another instance moved the session first: the turn is redone on its truth
            raise SessionConflict(str(exc)) from exc
        # dropping the sending session's timers is part of the intent (it wants none now)
        turn.dropped.extend(session.timers.values())
        if deliverer is not None and messages:
            report: Report = await deliverer.deliver(source, messages)
            source, turn.sent = report.session, turn.sent + report.sent
            deliverer.prune(source)  # the close, coming, writes what was delivered
        turn.events.append(f"transferred:{source_tenant.id}->{target.id}")
        telemetry.transferred(source_tenant.id, target.id, outcome.by)
        new = target_of(source)
        turn.session = new
        turn.rehome_source = source
        if source.transfer is not None and source.transfer.card is not None:
            lease = deliverer.lease() if deliverer else None
            line = transfer_card_line(new, source.transfer.card,
                                      lease.owner if lease else "none",
                                      lease.until if lease else 0.0,
                                      self.store.retention_seconds)
            # the engine owes it like any message it records in this turn
            new.owed = [o for o in new.owed if o.seq != line.seq]
            turn.entries.append(line)
        return await self._resume(turn)


STALE_CARD = (
    "That card is from an earlier step and no longer does anything. "
    "Please use the latest card, or type **help**."
)


def close(turn: Turn, state: SessionState) -> None:
    """Close the turn's session: nothing more is asked of the guest, no timer runs."""
    session = turn.session
    session.state = state
    session.awaiting_input = False
    session.closed_at = utcnow()
    turn.cancel_timers()
