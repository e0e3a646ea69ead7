"""The search for an agent: the guest's side of it, the offer rounds, and its timers.

The guest's side runs inside the guest's turn (`start`, `relay_from_guest`, `guest_leaves`,
`leave`). Timers (`on_timer`) run as a step of their own on the session (Engine.act): make
offers, move a hunt on, give up after the maximum wait, say "still searching". Every step
records what it changes and the messages it causes in the session's one write; offers are
recorded before they are sent, so an accept that lands while they go out finds them.

A timer acts only if the session still wants it (`Session.timers`, by key): one left over
from an earlier search, or fired a second time, does nothing.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import telemetry
from cards.agent_cards import closed_offer_card, offer_card, relay_card
from pipelines.actions.base import Goto, GuestInput, Outcome
from pipelines.actions.connect_to_agent import ConnectToAgentStage
from pipelines.config import StageConfig, TenantConfig
from pipelines.engine import Turn
from pipelines.routing.common import Desk, NothingToDo, guest_name, log
from pipelines.routing.offer_view import offer_view
from pipelines.routing.roster import Candidate, Roster
from pipelines.routing.skills import describe
from pipelines.routing.tiers import (
    ACCEPT_TIMEOUT,
    ESCALATE,
    TierPlan,
    active,
    plan,
    reset_tried,
    tried,
)
from pipelines.routing.waits import note_wait
from storage.agents import AgentRecord
from storage.models import Offer, Phase, Session, SessionState
from storage.timers import NotYet, Timer

if TYPE_CHECKING:
    from pipelines.routing.consult import Consults

# a timer whose session does not want it yet may be the first half of a write in flight
NOT_YET_WINDOW = 15.0
KINDS = ("offer", "accept_timeout", "max_wait", "searching", "escalate")


class Search:
    def __init__(self, desk: Desk) -> None:
        self.desk = desk
        self.roster = Roster(desk)
        # set by Routing: consults end when the guest leaves; warm transfers arrive here
        self.consults: Consults | None = None

    # -- the guest's side (inside the guest's turn) ----------------------------------

    async def start(self, turn: Turn, stage: StageConfig) -> None:
        assert isinstance(stage, ConnectToAgentStage)
        if self.consults is not None and await self.consults.arrive(turn, stage):
            return  # a warm transfer: connected to the consulted agent at once
        await turn.send_card(turn.bind(turn.template(stage, "waiting_template")))
        self.desk.new_search(turn, stage)

    @telemetry.traced("routing.relay")
    async def relay_from_guest(self, turn: Turn, guest: GuestInput) -> None:
        session = turn.session
        assignment = session.agent
        if assignment is None:
            return
        text = guest.text or "(sent a card response)"
        turn.message(f"agent:{assignment.agent_id}", card=relay_card(guest_name(session, "Guest"),
                                                                     text),
                     reference=assignment.reference, visible=False)

    async def guest_leaves(self, turn: Turn, stage: StageConfig) -> None:
        self.leave(turn, "The guest stopped waiting.")

    def leave(self, turn: Turn, why: str) -> None:
        """The guest cancelled, restarted or left: close the offers, or tell their agent and
        free them (after the write)."""
        session = turn.session
        if session.phase == Phase.WAITING:
            note_wait(turn, "abandoned")
            self.close_offers(turn, why)
        elif session.phase == Phase.CONNECTED and session.agent is not None:
            agent = session.agent
            if self.consults is not None:
                self.consults.close(turn, f"{guest_name(session)} left the chat, so the "
                                          "consult has ended.")
            turn.message(f"agent:{agent.agent_id}",
                         card=self.desk.card(session, "guest_left_template"),
                         reference=agent.reference, visible=False)
            turn.after_persist(lambda: self._release(agent.agent_id, session.id))
        turn.cancel_timers()
        session.phase = Phase.PIPELINE
        session.routing = None
        session.agent = None

    async def _release(self, agent_id: str, session_id: str) -> None:
        await self.desk.release(agent_id, session_id)

    def close_offers(self, turn: Turn, why: str, *, status: str = "withdrawn",
                     card: dict | None = None, keep: str | None = None) -> None:
        """Every open offer card is replaced (by `card`, or one saying `why`)."""
        session = turn.session
        tenant = self.desk.config.tenant(session.tenant_id)
        name = guest_name(session, "a guest")
        for offer in session.routing.offers if session.routing else []:
            if offer.status != "open" or offer.agent_id == keep:
                continue
            offer.status = status
            if offer.seq is not None:
                turn.message(f"agent:{offer.agent_id}", update_of=offer.seq, visible=False,
                             card=card or closed_offer_card(name, tenant.name, why))

    # -- timers ----------------------------------------------------------------------

    async def on_timer(self, timer: Timer) -> None:
        async def step(turn: Turn) -> Outcome | None:
            return await self._fire(turn, timer)

        try:
            # the timer is recorded as handled in the write of its effect: fired twice (a
            # crash before `finish`, a lease outlived), it finds itself done
            await self.desk.engine.act(timer.tenant_id, timer.session_id, step,
                                       key=f"timer:{timer.key}")
        except (NothingToDo, LookupError):
            return

    async def _fire(self, turn: Turn, timer: Timer) -> Outcome | None:
        session = turn.session
        if session.timers.get(timer.kind) != timer.key:
            young = self.desk.clock() - timer.scheduled_at < NOT_YET_WINDOW
            if young and timer.kind not in session.timers and session.state == SessionState.OPEN:
                raise NotYet(f"{timer.describe()}: the write that wants it has not landed")
            raise NothingToDo(f"{timer.describe()} is no longer wanted")
        del session.timers[timer.kind]
        if session.state != SessionState.OPEN or session.phase != Phase.WAITING:
            return None
        stage = self.desk.stage_of(session)
        assert isinstance(stage, ConnectToAgentStage)
        if timer.kind == "offer":
            await self.offer_round(turn, stage)
        elif timer.kind.startswith(ACCEPT_TIMEOUT):
            self._hunt_moves_on(turn, timer.payload.get("agent"))
            await self.offer_round(turn, stage)
        elif timer.kind == ESCALATE:
            await self._escalate(turn, stage, int(timer.payload.get("tier", 2)))
        elif timer.kind == "max_wait":
            note_wait(turn, "timed_out")
            self.close_offers(turn, "The guest stopped waiting: nobody was free in time.")
            turn.cancel_timers()
            session.phase = Phase.PIPELINE
            session.routing = None
            return Goto(stage.on_timeout)
        elif timer.kind == "searching":
            await turn.send_card(self.desk.card(session, "searching_template"))
            if stage.searching_every:
                turn.schedule("searching", stage.searching_every)
        return None

    def _hunt_moves_on(self, turn: Turn, agent_id: str | None) -> None:
        session = turn.session
        tenant = self.desk.config.tenant(session.tenant_id)
        name = guest_name(session, "a guest")
        for offer in session.routing.offers if session.routing else []:
            if offer.agent_id == agent_id and offer.status == "open":
                offer.status = "expired"
                if offer.seq is not None:
                    turn.message(f"agent:{offer.agent_id}", update_of=offer.seq, visible=False,
                                 card=closed_offer_card(name, tenant.name, "Not accepted in "
                                                        "time: offered to the next agent."))

    # -- offers ----------------------------------------------------------------------

    async def _escalate(self, turn: Turn, stage: ConnectToAgentStage, number: int) -> None:
        """The next tier joins: the guest is told, its agents are offered the chat; the
        earlier tiers' offers stay open."""
        routing = turn.session.routing
        assert routing is not None
        tiers = plan(self.desk.config, turn.session.tenant_id, stage)
        if number > len(tiers) or number <= routing.tier:
            return
        routing.tier = number
        line = turn.message("guest", card=self.desk.card(turn.session, "escalated_template"))
        line.tier = number
        if number < len(tiers):
            turn.schedule(ESCALATE, tiers[number - 1].escalate_after or 0,
                          {"tier": number + 1})
        await self.offer_round(turn, stage)

    async def eligible(self, tenant: TenantConfig) -> list[AgentRecord]:
        """Available, reachable agents of the department with room for one more chat, the
        fairest first (through the agents index: storage/agents.py)."""
        whole = TierPlan(1, tenant.name, tenant.id, "broadcast", None, {}, None)
        return [c.record for c in await self.roster.candidates(whole, {}, "exact")]

    @telemetry.traced("routing.offer_round")
    async def offer_round(self, turn: Turn, stage: ConnectToAgentStage) -> None:
        """Offer the chat to whom the active tiers add now: every agent of a broadcast tier
        who can take it (with `closest`, those who match best), the next agent of a hunt
        tier with no offer open. Offers already open stay open."""
        session = turn.session
        routing = session.routing
        assert routing is not None
        tiers = plan(self.desk.config, session.tenant_id, stage)
        claimed = {o.agent_id for o in routing.offers if o.status == "open"}
        picked: list[tuple[TierPlan, Candidate]] = []
        for tier in active(routing, tiers):
            found = await self.roster.candidates(tier, routing.skills, stage.match)
            for candidate in self._picks(turn, stage, tier, found, claimed):
                claimed.add(candidate.agent_id)
                picked.append((tier, candidate))
        for tenant_id in {t.tenant_id for t in active(routing, tiers)}:
            tenant = self.desk.config.tenant(tenant_id)
            turn.after_persist(lambda tenant=tenant: self.roster.audit(tenant))
        if not picked:
            if not any(o.status == "open" for o in routing.offers):
                log.info("no agent to offer the chat to", extra={
                    "session": session.id, "tenant": session.tenant_id})
            return
        view = await offer_view(self.desk.config, self.desk.sessions, session)
        view = replace(view, skills=describe(routing.skills) or None)
        for tier, candidate in picked:
            shown = replace(view, tier=f"tier {tier.number} of {len(tiers)}: {tier.name}"
                            if len(tiers) > 1 else None)
            record = candidate.record
            line = turn.message(f"agent:{record.agent_id}",
                                card=offer_card(shown, use_execute=self.desk.use_execute),
                                reference=record.reference, purpose="offer", visible=False)
            routing.offers.append(Offer(agent_id=record.agent_id, agent_name=record.name,
                                        seq=line.seq, tier=tier.number,
                                        via=candidate.tenant_id))
        targets = [c.record for _, c in picked]
        offered_at = self.desk.clock()
        turn.after_persist(lambda: self._offered(targets, offered_at))

    def _picks(self, turn: Turn, stage: ConnectToAgentStage, tier: TierPlan,
               found: list[Candidate], claimed: set[str]) -> list[Candidate]:
        """Whom one tier adds to the offers now (hunt: schedules its accept timeout)."""
        routing = turn.session.routing
        assert routing is not None
        if tier.mode == "broadcast":
            if stage.match == "closest" and found:
                found = [c for c in found if c.score == found[0].score]
            return [c for c in found if c.agent_id not in claimed]
        if any(o.status == "open" and o.tier == tier.number for o in routing.offers):
            return []
        done = tried(routing, tier.number)
        free = [c for c in found if c.agent_id not in claimed]
        fresh = [c for c in free if c.agent_id not in done]
        if not fresh:
            # everyone was tried: again, from the one offered this chat longest ago (the
            # session's own record: the same choice after any crash)
            order = {agent: i for i, agent in enumerate(done)}
            free.sort(key=lambda c: (-c.score, c.record.load(), order.get(c.agent_id, -1)))
        pick = (fresh or free)[:1]
        if pick:
            if not fresh:
                reset_tried(routing, tier.number)
            tried(routing, tier.number).append(pick[0].agent_id)
            turn.schedule(tier.accept_timer, stage.accept_timeout,
                          {"agent": pick[0].agent_id, "tier": tier.number})
        return pick

    async def _offered(self, targets: list[AgentRecord], at: float) -> None:
        """Hunt's fairness: who was offered a chat last goes to the back of the line."""
        for record in targets:
            await self.desk.agents.update(
                record.agent_id,
                lambda r, at=at: r.model_copy(update={"last_offered_at": at}),
                default=self.desk.default_record(record.agent_id),
            )


def waiting_since(session: Session, now: float) -> float:
    return session.routing.started_at if session.routing else now
