"""Consult: a connected agent asks another agent privately, then hands over or carries on.

`consult <department or agent>`, typed by the guest's agent: a private request showing the
chat so far goes to that agent, or to every agent of that department who can take a chat
now; the first to accept joins. The consult counts against their capacity while it lasts (a
reservation on their record, made before the session's write, as an accept's). While it is
connected, what either agent types goes to the other; those lines are kept in the session's
transcript marked private and are never sent to the guest, who is told nothing of it. Then:

- `transfer` (the guest's agent, with no department): a warm transfer. The chat moves to the
  consulted agent's department as any transfer does (a new session there, the six
  Session.Transferred* keys on both, the intent recorded first so a crash finishes the same
  move), and the new session starts on a live-agent stage already connected to the
  consulted agent, with no offer round. Who that is travels in the moved metadata
  (`Session.WarmTransfer.*`, read and dropped on arrival), so recovery lands the same way.
- `end consult` (either agent): the consulted agent leaves; the guest's agent carries on.

Each change is one step on the session (If-Match, retried on the new state). A consult ends
with the chat: the guest leaving, the chat ended or transferred, either agent leaving; both
agents are told and the consulted one is freed after the write. A consult accept that lands
after that is refused, and the reservation it made is freed.
"""

from __future__ import annotations

from typing import Any

from cards.agent_cards import (
    accepted_card,
    closed_offer_card,
    consult_joined_card,
    consult_offer_card,
    handover_card,
    relay_card,
    taken_card,
)
from pipelines.actions.base import Outcome, Transfer
from pipelines.actions.connect_to_agent import ConnectToAgentStage
from pipelines.config import TenantConfig
from pipelines.engine import Turn
from pipelines.routing.common import (
    Desk,
    NothingToDo,
    Refused,
    connected_to,
    consulting,
    guest_name,
    tenant_of,
)
from pipelines.routing.offer_view import offer_view
from pipelines.routing.roster import Roster
from pipelines.routing.tiers import TierPlan
from storage.agents import AgentRecord, ChatRef, Presence
from storage.models import Assignment, Consult, Direction, Offer, Phase, Session

# the metadata a warm transfer carries to the new session: whom it connects, and from where
WARM_AGENT = "Session.WarmTransfer.AgentId"
WARM_NAME = "Session.WarmTransfer.AgentName"
WARM_FROM = "Session.WarmTransfer.FromSessionId"
WARM_KEYS = (WARM_AGENT, WARM_NAME, WARM_FROM)


class Consults:
    def __init__(self, desk: Desk, roster: Roster) -> None:
        self.desk = desk
        self.roster = roster

    # -- asking ---------------------------------------------------------------------

    async def ask(self, agent_id: str, session: Session, target_text: str, *,
                  key: str | None = None) -> None:
        """`consult <department or agent>` on the agent's chat `session`."""
        desk = self.desk
        me = agent_id.casefold()
        if session.consult is not None:
            raise _busy(session.consult)
        tenant, targets, label = await self._targets(me, session, target_text)
        view = await offer_view(desk.config, desk.sessions, session)
        guest = guest_name(session)

        async def step(turn: Turn) -> Outcome | None:
            s = turn.session
            if not connected_to(s, me):
                raise Refused("That chat is no longer open.")
            assert s.agent is not None
            if s.consult is not None:
                raise _busy(s.consult)
            by = s.agent
            consult = Consult(by=me, by_name=by.agent_name, target=label, tenant_id=tenant.id)
            card = consult_offer_card(view, by.agent_name, use_execute=desk.use_execute)
            for record in targets:
                line = private(turn.message(f"agent:{record.agent_id}", card=card,
                                            reference=record.reference, visible=False))
                consult.offers.append(Offer(agent_id=record.agent_id, agent_name=record.name,
                                            seq=line.seq, via=tenant.id))
            private(turn.message(f"agent:{me}", reference=by.reference, visible=False,
                                 text=f"Asked {label} to consult on your chat with {guest}. "
                                      f"{guest} sees nothing of it. Type **end consult** to "
                                      "call it off."))
            s.consult = consult
            return None

        await desk.engine.act(session.tenant_id, session.id, step, key=key)

    async def _targets(self, me: str, session: Session, text: str
                       ) -> tuple[TenantConfig, list[AgentRecord], str]:
        """The department asked, the agents offered the consult, and how to name them."""
        config = self.desk.config
        names = ", ".join(t.name for t in config.tenants if t.enabled)
        department = config.find_tenant(text)
        if department is not None and department.enabled:
            whole = TierPlan(1, department.name, department.id, "broadcast", None, {}, None)
            found = await self.roster.candidates(whole, {}, "exact", exclude=[me])
            if not found:
                raise Refused(f"Nobody in {department.name} can take a consult right now. "
                              "Try **waiting** later, or consult someone by name.")
            return department, [c.record for c in found], department.name
        for tenant in [config.tenant(session.tenant_id), *config.tenants]:
            agent = tenant.find_agent(text) if tenant.enabled else None
            if agent is None:
                continue
            if agent.aad_object_id.casefold() == me:
                raise Refused("You can't consult yourself.")
            home = next((t for t in config.tenants_of_agent(agent.aad_object_id)
                         if t.id == session.tenant_id), tenant)
            record = await self.desk.agents.get(agent.aad_object_id)
            if record is None or not record.reachable:
                raise Refused(f"{agent.name} hasn't installed the app, so they can't be "
                              "reached.")
            if record.presence != Presence.AVAILABLE:
                raise Refused(f"{agent.name} is {record.presence.value} right now.")
            if record.load() >= home.capacity_of(agent):
                raise Refused(f"{agent.name} has no room for a consult right now.")
            return home, [record], agent.name
        raise Refused(f"There's no department or agent called {text!r}. Departments: "
                      f"{names}.")

    # -- joining --------------------------------------------------------------------

    async def accept(self, agent_id: str, tenant_id: str, session_id: str, *,
                     key: str | None = None, in_place: bool = True) -> dict[str, Any]:
        """The consulted agent accepts: the card that replaces their request. Raises
        Refused (the reservation it made is freed)."""
        desk = self.desk
        me = agent_id.casefold()
        tenant = tenant_of(desk.config, tenant_id)
        session = await desk.sessions.get(tenant.id, session_id)
        if consulting(session, me):
            assert session is not None and session.consult is not None
            return consult_joined_card(guest_name(session), tenant.name,
                                       session.consult.by_name)
        consult = session.consult if session is not None else None
        offer = _open(consult, me)
        if consult is None or offer is None:
            raise Refused(_why_closed(session, consult))
        home = tenant_of(desk.config, offer.via or consult.tenant_id)
        agent = home.agent(me) or tenant.agent(me)
        if agent is None:
            raise Refused("This consult was not offered to you.")
        record = await desk.reserve(me, home.capacity_of(agent), tenant.id, session_id,
                                    consult=True)

        async def step(turn: Turn) -> Outcome | None:
            s = turn.session
            if consulting(s, me):
                return None
            c = s.consult if s.phase == Phase.CONNECTED else None
            mine = _open(c, me)
            if c is None or mine is None:
                raise Refused(_why_closed(s, c))
            guest = guest_name(s)
            c.agent = Assignment(agent_id=me, agent_name=agent.name, reference=record.reference)
            for other in c.offers:
                if other.status == "open" and other is not mine:
                    other.status = "taken"
                    if other.seq is not None:
                        private(turn.message(f"agent:{other.agent_id}", update_of=other.seq,
                                             visible=False,
                                             card=taken_card(guest, tenant.name, agent.name)))
            mine.status = "taken"
            if not in_place and mine.seq is not None:
                private(turn.message(f"agent:{me}", update_of=mine.seq, visible=False,
                                     card=consult_joined_card(guest, tenant.name, c.by_name)))
            assert s.agent is not None
            private(turn.message(
                f"agent:{c.by}", reference=s.agent.reference, visible=False,
                text=f"{agent.name} joined your consult on {guest}'s chat. What you type now "
                     f"goes to {agent.name} only. **transfer** hands {guest} to "
                     f"{agent.name}; **end consult** ends the consult."))
            return None

        try:
            result = await desk.engine.act(tenant.id, session_id, step, key=key)
        except Refused:
            await desk.release(me, session_id)
            raise
        except BaseException:
            try:
                await desk.release(me, session_id)
            finally:
                raise
        if result.session is not None and not consulting(result.session, me):
            await desk.release(me, session_id)
            raise Refused(_why_closed(result.session, result.session.consult))
        done = result.session or session
        assert done is not None and done.consult is not None
        return consult_joined_card(guest_name(done), tenant.name, done.consult.by_name)

    # -- talking, ending ------------------------------------------------------------

    def relay(self, turn: Turn, agent_id: str, text: str) -> bool:
        """Inside a relay step: whether the agent's line is consult talk (then recorded as a
        private message to the other agent)."""
        s = turn.session
        c = s.consult
        me = agent_id.casefold()
        if c is None or c.agent is None or s.agent is None:
            return False
        if c.agent.agent_id == me:
            to, reference, who = c.by, s.agent.reference, f"{c.agent.agent_name} (consult)"
        elif s.agent.agent_id == me:
            to, reference, who = c.agent.agent_id, c.agent.reference, f"{c.by_name} (consult)"
        else:
            return False
        private(turn.message(f"agent:{to}", text=text, card=relay_card(who, text),
                             reference=reference, sender=f"agent:{me}", visible=False))
        return True

    async def end(self, agent_id: str, session: Session, *, key: str | None = None) -> None:
        """`end consult`, by either agent."""
        me = agent_id.casefold()

        async def step(turn: Turn) -> Outcome | None:
            s = turn.session
            c = s.consult
            if c is None or (c.by != me and (c.agent is None or c.agent.agent_id != me)):
                raise Refused("You're not in a consult.")
            guest = guest_name(s)
            if c.by == me:
                self.close(turn, f"{c.by_name} ended the consult on {guest}'s chat.",
                           to_by=f"The consult has ended: you're back with {guest}.")
            else:
                assert c.agent is not None
                self.close(turn, "You left the consult.",
                           to_by=f"{c.agent.agent_name} left the consult: you're on your own "
                                 f"with {guest} again.")
            return None

        await self.desk.engine.act(session.tenant_id, session.id, step, key=key)

    def close(self, turn: Turn, to_consultant: str, *, to_by: str | None = None) -> None:
        """Inside a step that ends the consult (or the chat): open requests are withdrawn,
        the consulted agent is told (and freed after the write), the guest's agent too when
        `to_by` says something."""
        s = turn.session
        c = s.consult
        if c is None:
            return
        guest = guest_name(s, "a guest")
        tenant = self.desk.config.tenant(s.tenant_id)
        for offer in c.offers:
            if offer.status == "open":
                offer.status = "withdrawn"
                if offer.seq is not None:
                    private(turn.message(f"agent:{offer.agent_id}", update_of=offer.seq,
                                         visible=False, card=closed_offer_card(
                                             guest, tenant.name, "This consult has ended.")))
        if c.agent is not None:
            consultant = c.agent
            private(turn.message(f"agent:{consultant.agent_id}", text=to_consultant,
                                 reference=consultant.reference, visible=False))
            turn.after_persist(lambda: self._free(consultant.agent_id, s.id))
        if to_by is not None and s.agent is not None:
            private(turn.message(f"agent:{c.by}", text=to_by, reference=s.agent.reference,
                                 visible=False))
        s.consult = None

    async def _free(self, agent_id: str, session_id: str) -> None:
        await self.desk.release(agent_id, session_id)

    # -- the warm transfer ----------------------------------------------------------

    def hand_over(self, turn: Turn, agent_id: str) -> Transfer:
        """Inside the guest's agent's step: the transfer to the consulted agent."""
        s = turn.session
        c = s.consult
        if c is None or c.agent is None:
            raise Refused("Type **transfer <department>** to hand this chat over, or consult "
                          "someone first (**consult <department or agent>**) and then type "
                          "**transfer** to hand it to them.")
        tenant = self.desk.config.tenant(c.tenant_id)
        where = warm_stage(tenant, s, self.desk.stage_of(s).key)
        if where is None:
            raise Refused(f"{tenant.name} has no live-agent stage to hand the guest to: type "
                          f"**end consult**, then **transfer {tenant.name}**.")
        assert s.agent is not None
        by, consultant = s.agent, c.agent
        guest = guest_name(s)
        turn.message(f"agent:{by.agent_id}", reference=by.reference, visible=False,
                     text=f"{guest} was handed to {consultant.agent_name} ({tenant.name}).")
        s.metadata[WARM_AGENT] = consultant.agent_id
        s.metadata[WARM_NAME] = consultant.agent_name
        s.metadata[WARM_FROM] = s.id
        s.consult = None  # the consulted agent's reservation moves with the chat (arrive)
        return Transfer(tenant.id, template=handover_card(by.agent_name, consultant.agent_name,
                                                          tenant.name),
                        by=f"agent:{by.agent_id}", by_name=by.agent_name,
                        pipeline_id=where[0], stage_key=where[1])

    async def arrive(self, turn: Turn, stage: ConnectToAgentStage) -> bool:
        """A session a warm transfer just opened: connected to the consulted agent at once
        (no offer round). False when this is no such arrival, or the agent is gone (then
        the guest waits for someone else, as usual)."""
        s = turn.session
        agent_id = s.metadata.get(WARM_AGENT)
        origin = s.metadata.get(WARM_FROM)
        if not isinstance(agent_id, str) or not agent_id:
            return False
        for name in WARM_KEYS:
            s.metadata.pop(name, None)
        hop = s.hop_log[-1] if s.hop_log else None
        if hop is None or hop.to_session_id != s.id or hop.from_session_id != origin:
            return False
        record = await self.desk.agents.get(agent_id)
        if record is None or not record.reachable or record.presence == Presence.OFFLINE:
            return False
        tenant = self.desk.config.tenant(s.tenant_id)
        s.phase = Phase.CONNECTED
        s.routing = None
        s.agent = Assignment(agent_id=record.agent_id, agent_name=record.name,
                             reference=record.reference)
        s.metadata["Agent.Id"] = record.agent_id
        s.metadata["Agent.Name"] = record.name
        turn.record(Direction.IN, f"agent:{record.agent_id}", visible=False,
                    text=f"{record.name} took the chat over from {hop.by_name or 'an agent'} "
                         "(warm transfer)")
        await turn.send_card(turn.bind(turn.template(stage, "connected_template")))
        turn.message(f"agent:{record.agent_id}", reference=record.reference, visible=False,
                     card=accepted_card(guest_name(s), tenant.name))
        since = self.desk.clock()
        turn.after_persist(lambda: self.move_reservation(record.agent_id, str(origin), s,
                                                         since))
        return True

    async def move_reservation(self, agent_id: str, origin: str, target: Session,
                               since: float) -> None:
        """The consulted agent's consult becomes their chat in the new session (one write on
        their record; until then `Desk.resolve` follows the transfer)."""

        def move(r: AgentRecord) -> AgentRecord | None:
            if r.has(target.id) and not r.has(origin):
                return None
            focused = r.focus is None or r.focus.session_id in (origin, target.id)
            r.chats = [c for c in r.chats if c.session_id not in (origin, target.id)]
            ref = ChatRef(tenant_id=target.tenant_id, session_id=target.id, since=since)
            r.chats.append(ref)
            if focused:
                r.focus = ref
            return r

        await self.desk.agents.update(agent_id, move,
                                      default=self.desk.default_record(agent_id))

    async def consultant_left(self, agent_id: str, session: Session) -> None:
        """The consulted agent went offline or removed the app: the consult ends."""

        async def step(turn: Turn) -> Outcome | None:
            s = turn.session
            if not consulting(s, agent_id):
                raise NothingToDo("not consulting any more")
            c = s.consult
            assert c is not None and c.agent is not None
            self.close(turn, "You left the consult.",
                       to_by=f"{c.agent.agent_name} left the consult: you're on your own "
                             f"with {guest_name(s)} again.")
            return None

        try:
            await self.desk.engine.act(session.tenant_id, session.id, step)
        except NothingToDo:
            await self.desk.release(agent_id, session.id)


def warm_stage(tenant: TenantConfig, session: Session, current: str
               ) -> tuple[str, str] | None:
    """Where a warm transfer lands in `tenant`: the same live-agent stage within the chat's
    own department; elsewhere, the first one of its primary pipeline, else of any."""
    if tenant.id == session.tenant_id:
        return session.pipeline_id, current
    pipelines = [tenant.primary, *(p for p in tenant.pipelines if p.id != tenant.primary_pipeline)]
    for pipeline in pipelines:
        for stage in pipeline.stages:
            if isinstance(stage, ConnectToAgentStage):
                return pipeline.id, stage.key
    return None


def private(line: Any) -> Any:
    """A transcript line between agents only: kept, never the guest's."""
    line.private = True
    return line


def _busy(consult: Consult) -> Refused:
    return Refused(f"You're already consulting {consult.target}: type **end consult** first.")


def _open(consult: Consult | None, agent_id: str) -> Offer | None:
    if consult is None:
        return None
    return next((o for o in consult.offers if o.agent_id == agent_id and o.status == "open"),
                None)


def _why_closed(session: Session | None, consult: Consult | None) -> str:
    if session is None or session.phase != Phase.CONNECTED:
        return "Sorry, this consult has ended: the chat is over."
    if consult is not None and consult.agent is not None:
        return f"Sorry, {consult.agent.agent_name} already joined this consult."
    return "Sorry, this consult has ended."


__all__ = ["WARM_KEYS", "Consults", "private", "warm_stage"]
