"""Live agents: the search, the offers, the accept race, the relay, hand-back and transfer.

The guest's side runs inside the guest's turn (the connect_to_agent action calls `start`,
`relay_from_guest`, `guest_leaves`). Everything else happens outside it and goes through the
store with If-Match: an agent's accept or reply (`accept`, `relay_from_agent`, `end_chat`,
`transfer_chat`), presence changes, and the durable timers (`on_timer`: make offers, move a
hunt on, give up after the maximum wait, say "still searching").

Every timer carries the `started` stamp of the search it belongs to, so a timer left over
from an earlier search of the same session does nothing.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from typing import Any

from cards.agent_cards import (
    Line,
    OfferView,
    accepted_card,
    closed_offer_card,
    offer_card,
    relay_card,
    taken_card,
)
from cards.binding import bind
from cards.text import card_text
from pipelines.actions.base import Goto, GuestInput, StageContext, Transfer
from pipelines.config import TenantConfig, tenant_transfer_key
from storage.agents import AgentRecord, AgentStore, Presence
from storage.models import (
    Assignment,
    Direction,
    Offer,
    Phase,
    Search,
    Session,
    SessionState,
    TranscriptEntry,
)
from storage.sessions import SessionConflict, SessionStore
from storage.timers import Timer, TimerStore

log = logging.getLogger("switchboard.routing")

class Refused(Exception):
    """An agent's request that cannot be done; the message is for the agent."""


class NotReady(Exception):
    """A timer came before the turn that scheduled it was saved: try again shortly."""


class Routing:
    def __init__(
        self,
        engine: Any,
        sessions: SessionStore,
        agents: AgentStore,
        timers: TimerStore,
        messenger: Any,
        *,
        clock: Callable[[], float] = time.time,
        use_execute: bool = True,
        kick: Callable[[], None] | None = None,
    ) -> None:
        self.engine = engine
        self.sessions = sessions
        self.agents = agents
        self.timers = timers
        self.messenger = messenger
        self.clock = clock
        self.use_execute = use_execute
        self.kick = kick or (lambda: None)

    @property
    def config(self):
        return self.engine.config

    # -- helpers ---------------------------------------------------------------------

    def stage_of(self, session: Session):
        tenant = self.config.tenant(session.tenant_id)
        key = session.routing.stage_key if session.routing else session.stage_key
        return tenant.pipeline(session.pipeline_id).stage(key)

    def card(self, session: Session, setting: str, **extra: Any) -> dict[str, Any]:
        stage = self.stage_of(session)
        template = self.config.template(session.tenant_id, session.pipeline_id, stage.key, setting)
        tenant = self.config.tenant(session.tenant_id)
        values = {**session.metadata, "Tenant.Id": tenant.id, "Tenant.Name": tenant.name, **extra}
        return bind(template, values)

    async def guest_reference(self, session: Session) -> dict[str, Any] | None:
        pointer = await self.sessions.pointer(session.conversation_id)
        return pointer.reference if pointer else None

    async def mutate(
        self, tenant_id: str, session_id: str, change: Callable[[Session], Session],
        entries: Callable[[Session], list[TranscriptEntry]] | None = None,
    ) -> Session:
        """Read, change, write If-Match; retried on conflict. `change` may raise Refused."""
        for _ in range(8):
            current = await self.sessions.get(tenant_id, session_id)
            if current is None:
                raise Refused("This chat no longer exists.")
            changed = change(current.model_copy(deep=True))
            lines = entries(changed) if entries else []
            try:
                return await self.sessions.save(changed, lines)
            except SessionConflict:
                continue
        raise SessionConflict(f"session {session_id} kept changing")

    def _new_search(self, session: Session, stage) -> float:
        started = self.clock()
        session.phase = Phase.WAITING
        session.agent = None
        session.routing = Search(stage_key=stage.key, mode=stage.mode, started_at=started)
        return started

    async def _schedule_search(self, session: Session, stage, started: float) -> None:
        payload = {"started": started}
        tid, sid = session.tenant_id, session.id
        await self.timers.schedule(tid, sid, "offer", delay=0, payload=payload)
        await self.timers.schedule(tid, sid, "max_wait", delay=stage.max_wait, payload=payload)
        if stage.searching_every:
            await self.timers.schedule(
                tid, sid, "searching", delay=stage.searching_every, payload=payload
            )
        self.kick()

    async def _stop_search(self, session: Session, why: str) -> None:
        """Cancel the timers and close every open offer card with `why`."""
        await self.timers.cancel_session(session.tenant_id, session.id)
        if session.routing:
            await self._close_offers(session, session.routing.offers, why)

    async def _close_offers(self, session: Session, offers: list[Offer], why: str) -> None:
        tenant = self.config.tenant(session.tenant_id)
        guest = str(session.metadata.get("Guest.Name") or "a guest")
        for offer in offers:
            if offer.status != "open" or not offer.activity_id:
                continue
            await self._update_agent_card(
                tenant, offer, closed_offer_card(guest, tenant.name, why)
            )

    async def _update_agent_card(self, tenant: TenantConfig, offer: Offer, card) -> None:
        record = await self.agents.get(tenant.id, offer.agent_id)
        if record is None or not record.reference or not offer.activity_id:
            return
        try:
            await self.messenger.update(record.reference, offer.activity_id, card)
        except Exception:
            log.exception("could not update an offer card", extra={"agent": offer.agent_id})

    async def _to_guest(self, session: Session, card: dict[str, Any]) -> None:
        reference = await self.guest_reference(session)
        if reference:
            await self.messenger.send(reference, card=card)

    def _default_record(self, tenant: TenantConfig, agent_id: str, name: str | None = None):
        config = tenant.agent(agent_id)

        def make() -> AgentRecord:
            return AgentRecord(
                tenant_id=tenant.id,
                agent_id=agent_id.casefold(),
                name=name or (config.name if config else agent_id),
                capacity=tenant.capacity_of(config) if config else tenant.agent_capacity,
            )

        return make

    # -- the guest's side (inside the guest's turn) ----------------------------------

    async def start(self, ctx: StageContext, stage) -> None:
        session = ctx.session
        started = self._new_search(session, stage)
        await ctx.send_card(ctx.bind(ctx.template(stage, "waiting_template")))
        await self._schedule_search(session, stage, started)

    async def relay_from_guest(self, ctx: StageContext, guest: GuestInput) -> None:
        session = ctx.session
        assignment = session.agent
        if assignment is None:
            return
        text = guest.text or "(sent a card response)"
        who = str(session.metadata.get("Guest.Name") or "Guest")
        tenant = self.config.tenant(session.tenant_id)

        async def relay() -> None:
            record = await self.agents.get(tenant.id, assignment.agent_id)
            if record is None or not record.reference:
                log.error("connected agent cannot be reached", extra={"agent": record})
                return
            await self.messenger.send(record.reference, card=relay_card(who, text))

        ctx.after_persist(relay)

    async def guest_leaves(self, ctx: StageContext, stage) -> None:
        session = ctx.session.model_copy(deep=True)
        ctx.session.phase = Phase.PIPELINE
        ctx.session.routing = None
        ctx.session.agent = None
        ctx.after_persist(lambda: self.after_guest_left(session))

    async def after_guest_left(self, session: Session) -> None:
        """The guest cancelled, restarted or left: free the agent, close the offers."""
        if session.phase == Phase.WAITING:
            await self._stop_search(session, "The guest stopped waiting.")
        elif session.phase == Phase.CONNECTED and session.agent is not None:
            await self.timers.cancel_session(session.tenant_id, session.id)
            record = await self._release_agent(session.tenant_id, session.agent.agent_id,
                                               session.id)
            if record is not None and record.reference:
                card = self.card(session, "guest_left_template")
                await self.messenger.send(record.reference, card=card)

    # -- timers ----------------------------------------------------------------------

    async def on_timer(self, timer: Timer) -> None:
        session = await self.sessions.get(timer.tenant_id, timer.session_id)
        if session is None or session.state != SessionState.OPEN:
            return
        started = timer.payload.get("started")
        current = session.routing.started_at if session.routing else None
        if session.phase != Phase.WAITING or current != started:
            if timer.attempts < 3 and (current is None or current < started):
                raise NotReady(f"{timer.describe()}: its search is not saved yet")
            return  # left over from an earlier search
        stage = self.stage_of(session)
        if timer.kind == "offer":
            await self._offer_round(session, stage)
        elif timer.kind == "accept_timeout":
            await self._hunt_moves_on(session, stage, timer.payload.get("agent"))
        elif timer.kind == "max_wait":
            await self._give_up(session, stage)
        elif timer.kind == "searching":
            await self._to_guest(session, self.card(session, "searching_template"))
            await self.timers.schedule(
                session.tenant_id, session.id, "searching", delay=stage.searching_every,
                payload={"started": started},
            )

    async def _eligible(self, tenant: TenantConfig) -> list[AgentRecord]:
        """Available, reachable agents with room for one more chat, fairest first."""
        records = {r.agent_id: r for r in await self.agents.list(tenant.id)}
        out = []
        for agent in tenant.agents:
            record = records.get(agent.aad_object_id.casefold())
            if record is None or not record.reachable:
                log.warning(
                    "agent cannot be offered chats: they have not installed the app",
                    extra={"tenant": tenant.id, "agent": agent.aad_object_id,
                           "agent_name": agent.name},
                )
                continue
            if record.presence != Presence.AVAILABLE:
                continue
            if await self._load(record.agent_id, record) >= record.capacity:
                continue
            out.append(record)
        out.sort(key=lambda r: (len(r.chats), r.last_offered_at, r.name))
        return out

    async def _load(self, agent_id: str, known: AgentRecord | None = None) -> int:
        """Chats the person has in all their tenants (`known`: a record already read)."""
        total = 0
        for tenant in self.config.tenants_of_agent(agent_id):
            if known is not None and known.tenant_id == tenant.id:
                record = known
            else:
                record = await self.agents.get(tenant.id, agent_id)
            total += len(record.chats) if record else 0
        return total

    async def offer_view(self, session: Session) -> OfferView:
        tenant = self.config.tenant(session.tenant_id)
        answers = [
            (_words(key.removeprefix("Answers.")), str(value))
            for key, value in sorted(session.metadata.items())
            if key.startswith("Answers.") and value not in (None, "")
        ]
        earlier: list[Line] = []
        # the whole chat so far: earlier departments' sessions, then this one's
        for previous in await self.sessions.chain(session):
            for entry in await self.sessions.transcript(previous.tenant_id, previous.id):
                earlier.append(_line(entry, previous))
        last = session.hop_log[-1] if session.hop_log else None
        came_from = last.from_tenant_name if last and last.to_session_id == session.id else None
        return OfferView(
            session_id=session.id,
            tenant_id=tenant.id,
            tenant_name=tenant.name,
            guest_name=str(session.metadata.get("Guest.Name") or "A guest"),
            answers=answers,
            transferred_from=came_from,
            transferred_by=last.by_name if came_from and last else None,
            earlier=tuple(earlier),
        )

    async def _offer_round(self, session: Session, stage) -> None:
        tenant = self.config.tenant(session.tenant_id)
        routing = session.routing
        assert routing is not None
        candidates = await self._eligible(tenant)
        new_round = False
        if stage.mode == "broadcast":
            offered = {o.agent_id for o in routing.offers if o.status == "open"}
            targets = [c for c in candidates if c.agent_id not in offered]
        else:
            if any(o.status == "open" for o in routing.offers):
                return
            fresh = [c for c in candidates if c.agent_id not in routing.tried]
            new_round = not fresh
            targets = (fresh or candidates)[:1]
        if not targets:
            log.info("no agent to offer the chat to", extra={"session": session.id,
                                                             "tenant": tenant.id})
            return
        view = await self.offer_view(session)
        sent: list[Offer] = []
        for record in targets:
            try:
                activity_id = await self.messenger.send(
                    record.reference, card=offer_card(view, use_execute=self.use_execute)
                )
            except Exception:
                log.exception("could not send an offer", extra={"agent": record.agent_id})
                continue
            sent.append(Offer(agent_id=record.agent_id, agent_name=record.name,
                              activity_id=activity_id))
            now = self.clock()
            await self.agents.update(
                tenant.id, record.agent_id,
                lambda r, now=now: r.model_copy(update={"last_offered_at": now}),
                default=self._default_record(tenant, record.agent_id),
            )
        if not sent:
            return

        def record_offers(s: Session) -> Session:
            if s.phase != Phase.WAITING or s.routing is None or (
                s.routing.started_at != routing.started_at
            ):
                raise Refused("the search ended while the offers went out")
            s.routing.offers.extend(sent)
            if stage.mode == "hunt":
                if new_round:  # everyone was tried: start again from the fairest
                    s.routing.tried = []
                s.routing.tried.append(sent[0].agent_id)
            return s

        try:
            await self.mutate(session.tenant_id, session.id, record_offers)
        except Refused:
            await self._close_offers(session, sent, "This chat is no longer waiting.")
            return
        if stage.mode == "hunt":
            await self.timers.schedule(
                session.tenant_id, session.id, "accept_timeout", delay=stage.accept_timeout,
                payload={"started": routing.started_at, "agent": sent[0].agent_id},
            )

    async def _hunt_moves_on(self, session: Session, stage, agent_id: str | None) -> None:
        expired = [o for o in session.routing.offers if o.agent_id == agent_id and
                   o.status == "open"]

        def expire(s: Session) -> Session:
            for offer in s.routing.offers if s.routing else []:
                if offer.agent_id == agent_id and offer.status == "open":
                    offer.status = "expired"
            return s

        await self._close_offers(session, expired, "Not accepted in time: offered to the "
                                 "next agent.")
        session = await self.mutate(session.tenant_id, session.id, expire)
        await self._offer_round(session, stage)

    async def _give_up(self, session: Session, stage) -> None:
        await self._stop_search(session, "The guest stopped waiting: nobody was free in time.")
        session.phase = Phase.PIPELINE
        session.routing = None
        reference = await self.guest_reference(session)
        if reference is None:
            return
        await self.engine.advance(session, Goto(stage.on_timeout),
                                  self.messenger.sender(reference))

    # -- the agent's side ------------------------------------------------------------

    async def register(self, agent_id: str, name: str | None, reference: dict[str, Any]) -> None:
        """An agent wrote to the bot: remember how to reach them (available the first time)."""
        newly_reachable = []
        for tenant in self.config.tenants_of_agent(agent_id):
            first: list[bool] = []

            def change(r: AgentRecord, first=first) -> AgentRecord | None:
                if r.reference == reference and r.etag is not None:
                    return None
                update: dict[str, Any] = {"reference": reference}
                if r.reference is None:
                    update["presence"] = Presence.AVAILABLE
                    first.append(True)
                return r.model_copy(update=update)

            await self.agents.update(
                tenant.id, agent_id, change, default=self._default_record(tenant, agent_id)
            )
            if first:
                newly_reachable.append(tenant)
        if newly_reachable:  # guests may already be waiting for them
            await self._offer_waiting_chats(newly_reachable)

    async def accept(self, agent_id: str, tenant_id: str, session_id: str) -> dict[str, Any]:
        """An agent pressed Accept: the card that replaces their offer. Raises Refused."""
        try:
            tenant = self.config.tenant(tenant_id)
        except KeyError:
            raise Refused("This offer is for a department that no longer exists.") from None
        agent = tenant.agent(agent_id)
        if agent is None:
            raise Refused(f"You're not an agent of {tenant.name}, so you can't take its chats.")
        session = await self.sessions.get(tenant.id, session_id)
        _check_waiting(session, agent_id)
        record = await self.agents.get(tenant.id, agent_id)
        capacity = record.capacity if record else tenant.capacity_of(agent)
        if await self._load(agent_id, record) >= capacity:
            raise Refused(f"You already have {capacity} chats, your limit. End one first.")

        def reserve(r: AgentRecord) -> AgentRecord:
            if session_id not in r.chats:
                r.chats.append(session_id)
            r.focus = session_id
            return r

        await self.agents.update(tenant.id, agent_id, reserve,
                                 default=self._default_record(tenant, agent_id))
        name = agent.name

        def assign(s: Session) -> Session:
            _check_waiting(s, agent_id)
            s.phase = Phase.CONNECTED
            s.agent = Assignment(agent_id=agent_id.casefold(), agent_name=name)
            s.metadata["Agent.Id"] = agent_id.casefold()
            s.metadata["Agent.Name"] = name
            for offer in s.routing.offers if s.routing else []:
                if offer.status == "open":
                    offer.status = "taken"
            return s

        try:
            session = await self.mutate(tenant.id, session_id, assign)
        except Refused:
            await self._release_agent(tenant.id, agent_id, session_id)
            raise
        await self.timers.cancel_session(tenant.id, session_id)
        guest = str(session.metadata.get("Guest.Name") or "the guest")
        for offer in session.routing.offers if session.routing else []:
            if offer.agent_id != agent_id.casefold() and offer.activity_id:
                await self._update_agent_card(tenant, offer, taken_card(guest, tenant.name, name))
        await self._to_guest(session, self.card(session, "connected_template"))
        return accepted_card(guest, tenant.name)

    async def _release_agent(self, tenant_id: str, agent_id: str, session_id: str):
        tenant = self.config.tenant(tenant_id)

        def release(r: AgentRecord) -> AgentRecord | None:
            if session_id not in r.chats and r.focus != session_id:
                return None
            r.chats = [c for c in r.chats if c != session_id]
            if r.focus == session_id:
                r.focus = r.chats[-1] if r.chats else None
            return r

        return await self.agents.update(tenant_id, agent_id, release,
                                        default=self._default_record(tenant, agent_id))

    async def focused_chat(self, agent_id: str) -> Session:
        """The chat an agent's typed messages go to; Refused when there is none."""
        for tenant in self.config.tenants_of_agent(agent_id):
            record = await self.agents.get(tenant.id, agent_id)
            if record and record.focus:
                session = await self.sessions.get(tenant.id, record.focus)
                if _connected_to(session, agent_id):
                    return session
                await self._release_agent(tenant.id, agent_id, record.focus)
        raise Refused("You have no open chat. Type **waiting** to see who is waiting.")

    async def my_chats(self, agent_id: str) -> list[Session]:
        out = []
        for tenant in self.config.tenants_of_agent(agent_id):
            record = await self.agents.get(tenant.id, agent_id)
            for session_id in record.chats if record else []:
                session = await self.sessions.get(tenant.id, session_id)
                if _connected_to(session, agent_id):
                    out.append(session)
        return out

    async def switch(self, agent_id: str, session: Session) -> None:
        tenant = self.config.tenant(session.tenant_id)
        await self.agents.update(
            tenant.id, agent_id, lambda r: r.model_copy(update={"focus": session.id}),
            default=self._default_record(tenant, agent_id),
        )

    async def relay_from_agent(self, agent_id: str, text: str) -> None:
        session = await self.focused_chat(agent_id)
        name = session.agent.agent_name if session.agent else "Agent"

        def keep(s: Session) -> Session:
            if not _connected_to(s, agent_id):
                raise Refused("That chat is no longer open.")
            s.transcript_count += 1
            return s

        def line(s: Session) -> list[TranscriptEntry]:
            return [TranscriptEntry(
                session_id=s.id, tenant_id=s.tenant_id, seq=s.transcript_count - 1,
                direction=Direction.OUT, sender=f"agent:{agent_id.casefold()}", text=text,
            )]

        session = await self.mutate(session.tenant_id, session.id, keep, line)
        await self._to_guest(session, relay_card(name, text))

    async def end_chat(self, agent_id: str) -> str:
        session = await self.focused_chat(agent_id)
        await self._release_agent(session.tenant_id, agent_id, session.id)
        stage = self.stage_of(session)
        session.phase = Phase.PIPELINE
        session.agent = None
        session.routing = None
        reference = await self.guest_reference(session)
        guest = str(session.metadata.get("Guest.Name") or "the guest")
        if reference is not None:
            await self.engine.advance(session, Goto(stage.next),
                                      self.messenger.sender(reference))
        return f"Your chat with {guest} has ended."

    async def transfer_chat(self, agent_id: str, target_text: str) -> str:
        session = await self.focused_chat(agent_id)
        target = self.config.find_tenant(target_text)
        names = ", ".join(t.name for t in self.config.tenants if t.enabled)
        if target is None or not target.enabled:
            raise Refused(f"There's no department called {target_text!r}. Try one of: {names}.")
        if target.id == session.tenant_id:
            raise Refused(f"This chat is already in {target.name}.")
        name = session.agent.agent_name if session.agent else agent_id
        await self._release_agent(session.tenant_id, agent_id, session.id)
        session.phase = Phase.PIPELINE
        session.agent = None
        session.routing = None
        reference = await self.guest_reference(session)
        guest = str(session.metadata.get("Guest.Name") or "the guest")
        template = self.config.templates[tenant_transfer_key(target.id)]
        outcome = Transfer(target.id, template=template, by=f"agent:{agent_id.casefold()}",
                           by_name=name)
        if reference is not None:
            await self.engine.advance(session, outcome, self.messenger.sender(reference))
        return f"{guest} was transferred to {target.name}."

    async def set_presence(self, agent_id: str, presence: Presence) -> str:
        tenants = self.config.tenants_of_agent(agent_id)
        for tenant in tenants:
            await self.agents.update(
                tenant.id, agent_id, lambda r: r.model_copy(update={"presence": presence}),
                default=self._default_record(tenant, agent_id),
            )
        if presence == Presence.OFFLINE:
            for session in await self.my_chats(agent_id):
                await self.agent_left(agent_id, session)
        if presence == Presence.AVAILABLE:
            await self._offer_waiting_chats(tenants)
        return f"You're now {presence.value}."

    async def _offer_waiting_chats(self, tenants: list[TenantConfig]) -> None:
        """Someone became available: every chat waiting in their tenants gets an offer round."""
        for tenant in tenants:
            for session in await self.sessions.list(
                tenant.id, SessionState.OPEN, phase=Phase.WAITING.value
            ):
                await self.timers.schedule(
                    tenant.id, session.id, "offer", delay=0,
                    payload={"started": session.routing.started_at
                             if session.routing else None},
                )
        self.kick()

    async def agent_left(self, agent_id: str, session: Session) -> None:
        """The agent went offline or left mid-chat: tell the guest, search again."""
        await self._release_agent(session.tenant_id, agent_id, session.id)
        stage = self.stage_of(session)
        left = self.card(session, "agent_left_template")
        started: dict[str, float] = {}

        def again(s: Session) -> Session:
            if not _connected_to(s, agent_id):
                raise Refused("the chat moved on")
            started["at"] = self._new_search(s, stage)
            return s

        try:
            session = await self.mutate(session.tenant_id, session.id, again)
        except Refused:
            return
        await self._to_guest(session, left)
        await self._schedule_search(session, stage, started["at"])

    async def waiting_list(self, agent_id: str) -> list[str]:
        now = self.clock()
        lines = []
        for tenant in self.config.tenants_of_agent(agent_id):
            for session in await self.sessions.list(
                tenant.id, SessionState.OPEN, phase=Phase.WAITING.value
            ):
                since = session.routing.started_at if session.routing else now
                minutes = max(0, int((now - since) // 60))
                guest = session.metadata.get("Guest.Name") or "A guest"
                lines.append(f"{guest} ({tenant.name}), waiting {minutes} min")
        return lines


def _words(name: str) -> str:
    """`EmployeeNumber` -> `Employee number`: metadata names as an agent reads them."""
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", name)
    return spaced[:1].upper() + spaced[1:].lower()


def _check_waiting(session: Session | None, agent_id: str) -> None:
    if session is None or session.state != SessionState.OPEN:
        raise Refused("Sorry, this chat has ended.")
    if session.phase == Phase.CONNECTED and session.agent is not None:
        if session.agent.agent_id == agent_id.casefold():
            raise Refused("You already have this chat.")
        raise Refused(f"Sorry, {session.agent.agent_name} already took this chat.")
    if session.phase != Phase.WAITING:
        raise Refused("Sorry, this chat is no longer waiting for an agent.")


def _connected_to(session: Session | None, agent_id: str) -> bool:
    return (
        session is not None
        and session.state == SessionState.OPEN
        and session.phase == Phase.CONNECTED
        and session.agent is not None
        and session.agent.agent_id == agent_id.casefold()
    )


def _line(entry: TranscriptEntry, session: Session) -> Line:
    if entry.sender == "guest":
        who = str(session.metadata.get("Guest.Name") or "Guest")
    elif entry.sender.startswith("agent:"):
        who = str(session.metadata.get("Agent.Name") or "Agent")
    else:
        who = "Bot"
    text = entry.text or _pressed(entry.value) or _card_words(entry.card) or "(card response)"
    return Line(who, " ".join(text.split()))


_PRESSED = {"more": "I still need help", "solved": "This solved it", "cancel": "Stop waiting",
            "skip": "Skip"}


def _pressed(value: dict[str, Any] | None) -> str:
    """What a card submit said, in words: the answer typed, or the button pressed."""
    if not isinstance(value, dict):
        return ""
    if isinstance(value.get("answer"), str) and value["answer"].strip():
        return value["answer"]
    data = value.get("switchboard") if isinstance(value.get("switchboard"), dict) else {}
    if isinstance(data.get("choice"), str):
        return f"(chose {data['choice']})"
    if isinstance(value.get("rating"), str | int):
        return f"(rated {value['rating']})"
    return f"({_PRESSED[data['verb']]})" if data.get("verb") in _PRESSED else ""


def _card_words(card: dict[str, Any] | None) -> str:
    """A card's text without its buttons ("[Send]")."""
    if not card:
        return ""
    lines = card_text(card).splitlines()
    return " ".join(line for line in lines if not (line.startswith("[") and line.endswith("]")))
