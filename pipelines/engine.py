"""The engine: walks a session through its pipeline's stages.

One `Turn` is one activity from the guest. The engine asks the current stage's action
what to do, follows the outcomes (next stage, wait, close, transfer) and writes the
session, its position, its metadata and its new transcript lines after every stage that
sent something, and at the end of the turn, so a restart between two guest messages
resumes exactly where the guest was.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cards.binding import bind
from pipelines.actions import get_action
from pipelines.actions.base import Close, Goto, GuestInput, Outcome, Transfer, Wait
from pipelines.config import PipelineConfig, StageConfig, SwitchboardConfig, TenantConfig
from storage.models import (
    Direction,
    MetadataValue,
    Session,
    SessionState,
    TranscriptEntry,
    Undelivered,
    utcnow,
)
from storage.rehome import TransferRefused, rehome
from storage.sessions import SessionConflict, SessionStore, new_session_id

log = logging.getLogger(__name__)

# stages one turn may pass through before the engine calls it a loop in the config
MAX_STEPS_PER_TURN = 100

# sends one activity to the guest: (text, card) -> the activity id the channel gave it
Sender = Callable[[str | None, dict[str, Any] | None], Awaitable[str | None]]


@dataclass
class TurnResult:
    session: Session | None
    # for Action.Execute: the card that replaces the pressed one
    replace_card: dict[str, Any] | None = None
    sent: int = 0
    events: list[str] = field(default_factory=list)


class Turn:
    """The StageContext an action sees, plus the bookkeeping of one turn."""

    def __init__(self, engine: Engine, session: Session, send: Sender) -> None:
        self.engine = engine
        self.config = engine.config
        self.session = session
        self._send = send
        self.entries: list[TranscriptEntry] = []
        self.outbox: list[tuple[str | None, dict[str, Any] | None]] = []
        self.after: list[Callable[[], Awaitable[None]]] = []
        self.replace_card: dict[str, Any] | None = None
        self.use_execute = engine.use_execute
        self.sent = 0
        self.events: list[str] = []

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
        return bind(text, self.values())

    def template(self, stage: StageConfig, setting: str) -> dict[str, Any]:
        return self.config.template(self.tenant.id, self.pipeline.id, stage.key, setting)

    def set_metadata(self, key: str, value: MetadataValue) -> None:
        self.session.metadata[key] = value

    def after_persist(self, job: Callable[[], Awaitable[None]]) -> None:
        self.after.append(job)

    @property
    def routing(self) -> Any:
        return self.engine.routing

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.engine.clock(), UTC)

    async def send_card(self, card: dict[str, Any]) -> None:
        await self._out(None, card)

    async def send_text(self, text: str) -> None:
        await self._out(text, None)

    async def _out(self, text: str | None, card: dict[str, Any] | None) -> None:
        # held until the session write that records it succeeds: a turn that loses a
        # race with another instance (If-Match) has sent nothing and can be redone
        self.outbox.append((text, card))
        self.record(Direction.OUT, "bot", text=text, card=card)

    # -- bookkeeping -----------------------------------------------------------------

    def record(self, direction: Direction, sender: str, **fields: Any) -> None:
        session = self.session
        self.entries.append(
            TranscriptEntry(
                session_id=session.id,
                tenant_id=session.tenant_id,
                seq=session.transcript_count,
                direction=direction,
                sender=sender,
                **fields,
            )
        )
        session.transcript_count += 1

    async def persist(self) -> None:
        """Write the session and its new transcript lines, then send what they record."""
        self.session = await self.engine.store.save(self.session, self.entries)
        self.entries = []
        outbox, self.outbox = self.outbox, []
        failures = []
        for text, card in outbox:
            try:
                await self._send(text, card)
                self.sent += 1
            except Exception as exc:  # retried already; record it, never lose it silently
                log.error("a message to the guest could not be delivered", exc_info=exc,
                          extra={"session": self.session.id})
                failures.append(Undelivered(error=f"{type(exc).__name__}: {exc}"[:500],
                                            text=text, card=card))
        if failures:
            self.session.undelivered = [*self.session.undelivered, *failures][-20:]
            self.session = await self.engine.store.save(self.session)


class Engine:
    def __init__(
        self,
        config: SwitchboardConfig,
        store: SessionStore,
        *,
        use_execute: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.store = store
        self.use_execute = use_execute
        # epoch seconds; injected so tests (business hours, timers) never read the wall clock
        self.clock = clock
        # set by the app: pipelines.routing.Routing (live agents)
        self.routing: Any = None

    # -- entry points ----------------------------------------------------------------

    async def start(
        self,
        conversation_id: str,
        guest: dict[str, MetadataValue],
        reference: dict[str, Any],
        send: Sender,
        tenant_id: str | None = None,
        first: GuestInput | None = None,
    ) -> TurnResult:
        """A new session in the primary tenant (or `tenant_id`), run until it waits."""
        tenant = self.config.tenant(tenant_id or self.config.primary_tenant)
        session_id = new_session_id()
        now = utcnow()
        session = Session(
            id=session_id,
            tenant_id=tenant.id,
            conversation_id=conversation_id,
            pipeline_id=tenant.primary_pipeline,
            stage_key=tenant.primary.first.key,
            started=False,
            created_at=now,
            metadata={
                **guest,
                "Session.Id": session_id,
                "Session.TenantId": tenant.id,
                "Session.TenantName": tenant.name,
                "Session.StartedAt": now,
                "Session.Hops": 0,
            },
        )
        session = await self.store.begin(session, reference)
        turn = Turn(self, session, send)
        if first is not None:
            turn.record(Direction.IN, "guest", text=first.text, value=first.value)
            turn.session.mark_seen(first.activity_id)
        return await self._finish(turn, await self._resume(turn))

    async def handle(
        self, session: Session, guest: GuestInput, send: Sender, name: str | None = None
    ) -> TurnResult:
        """One activity from the guest, for their live session."""
        if session.saw(guest.activity_id):
            return TurnResult(session, events=["duplicate"])
        session.mark_seen(guest.activity_id)
        if name and not session.metadata.get("Guest.Name"):
            session.metadata["Guest.Name"] = name  # install events come without a name
        turn = Turn(self, session, send)
        turn.record(Direction.IN, "guest", text=guest.text, value=guest.value)
        if not session.started or session.pending_card:
            return await self._finish(turn, await self._resume(turn))
        # a card's button carries its session and (for stage cards) its stage
        if guest.session_id is not None and (
            guest.session_id != session.id
            or (guest.stage_key is not None and guest.stage_key != session.stage_key)
        ):
            await turn.send_text(
                "That card is from an earlier step and no longer does anything. "
                "Please use the latest card, or type **help**."
            )
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
        send: Sender,
        *,
        text: str | None = None,
        card: dict[str, Any] | None = None,
        close_as: SessionState | None = None,
    ) -> TurnResult:
        """A command's answer (help, restart): kept in the transcript, position unchanged."""
        session.mark_seen(guest.activity_id)
        turn = Turn(self, session, send)
        turn.record(Direction.IN, "guest", text=guest.text, value=guest.value)
        if card is not None:
            await turn.send_card(card)
        if text is not None:
            await turn.send_text(text)
        if close_as is not None:
            turn.session.state = close_as
            turn.session.awaiting_input = False
            turn.session.closed_at = utcnow()
        await turn.persist()
        return TurnResult(turn.session, sent=turn.sent)

    async def advance(self, session: Session, outcome: Outcome, send: Sender) -> TurnResult:
        """Move a session on from outside a guest turn (an agent ended it, a timer fired)."""
        turn = Turn(self, session, send)
        return await self._finish(turn, outcome)

    # -- the walk --------------------------------------------------------------------

    async def _resume(self, turn: Turn) -> Outcome | None:
        session = turn.session
        if session.pending_card:
            card = session.pending_card
            session.pending_card = None
            await turn.send_card(card)
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
            turn.session.state = SessionState.ENDED
            turn.session.closed_at = utcnow()
        await turn.persist()
        jobs, turn.after = turn.after, []
        for job in jobs:
            try:
                await job()
            except Exception:  # the guest's turn is done and saved; log, don't undo it
                log.exception("a follow-up of the turn failed", extra={"session": turn.session.id})
        return TurnResult(turn.session, turn.replace_card, turn.sent, turn.events)

    async def _follow(self, turn: Turn, outcome: Outcome) -> Outcome | None:
        session = turn.session
        if isinstance(outcome, Wait):
            session.awaiting_input = True
            return None
        if isinstance(outcome, Goto):
            if turn.outbox:
                await turn.persist()
            session = turn.session
            session.stage_key = outcome.key
            session.awaiting_input = False
            return await get_action(turn.stage.action).enter(turn, turn.stage)
        if isinstance(outcome, Close):
            if outcome.card is not None:
                await turn.send_card(outcome.card)
            session.state = outcome.state
            session.awaiting_input = False
            session.closed_at = utcnow()
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
        if turn.outbox:
            await turn.persist()
        entries, turn.entries = turn.entries, []
        try:
            new = await rehome(
                self.store,
                turn.session,
                source_tenant_name=source_tenant.name,
                to_tenant_id=target.id,
                to_tenant_name=target.name,
                to_pipeline_id=target.primary_pipeline,
                to_stage_key=target.primary.first.key,
                card=lambda metadata: bind(
                    template, {**metadata, "Tenant.Id": target.id, "Tenant.Name": target.name}
                ),
                entries=entries,
                by=outcome.by,
                by_name=outcome.by_name,
            )
        except TransferRefused as exc:
            # another instance moved the session first: the bot redoes the turn on its truth
            raise SessionConflict(str(exc)) from exc
        turn.events.append(f"transferred:{source_tenant.id}->{target.id}")
        turn.session = new
        return await self._resume(turn)
