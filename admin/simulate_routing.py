"""The simulator's live-agent side: nobody answers, the admin plays the agents, and the search
follows the stage's skills and tiers as the bot would.

At a `connect_to_agent` stage it prints the skills the chat requires (resolved from the
guest's answers as the bot resolves them) and, per tier offered now, the configured agents it
would be offered to (presence aside: no agent is online in a dry run), best match first.
`/agent [NAME]` accepts as the first of them, or as NAME when the chat would be offered to
them (an agent it would not be offered to is refused, saying why; a name that is no agent of
the config plays a stand-in); `/escalate` lets the next tier join, as its timer would.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pipelines.actions.connect_to_agent import ConnectToAgentStage
from pipelines.config import AgentConfig, SwitchboardConfig
from pipelines.routing.skills import coverage, describe, qualifies, required
from pipelines.routing.tiers import TierPlan, active, plan
from storage.models import Assignment, Direction, Phase, Search, Session

if TYPE_CHECKING:
    from pipelines.engine import Turn


class DryRunRouting:
    """Stands in for live-agent routing (the engine's `RoutingService`)."""

    def __init__(self, config: SwitchboardConfig, write: Callable[[str], None]) -> None:
        self.config = config
        self.write = write

    async def start(self, ctx: Any, stage: ConnectToAgentStage) -> None:
        session = ctx.session
        session.phase = Phase.WAITING
        session.agent = None
        session.routing = Search(stage_key=stage.key, mode=stage.mode,
                                 started_at=ctx.now().timestamp(),
                                 skills=required(stage, session.metadata))
        await ctx.send_card(ctx.bind(ctx.template(stage, "waiting_template")))
        ctx.after_persist(lambda: self._hint(session, stage))

    async def _hint(self, session: Session, stage: ConnectToAgentStage) -> None:
        for line in self.describe(session, stage):
            self.write(line)
        self.write("(dry run: no agent will answer. /agent [NAME]: an agent accepts; "
                   "/escalate: the next tier joins; /timeout: nobody did in time; `cancel`: "
                   "the guest stops waiting)")

    def describe(self, session: Session, stage: ConnectToAgentStage,
                 tiers: list[TierPlan] | None = None) -> list[str]:
        """What the search would do now: the skills, and whom each active tier offers."""
        routing = session.routing
        assert routing is not None
        wanted = routing.skills
        out = []
        if wanted:
            out.append(f"(dry run: the chat needs {describe(wanted)}; match {stage.match})")
        every = plan(self.config, session.tenant_id, stage)
        shown = tiers or active(routing, every)
        # an agent in two tiers is offered the chat once, in the earlier (as the bot does)
        seen = {a.aad_object_id.casefold() for t in active(routing, every) if t not in shown
                for a in self.offered(t, wanted, stage.match)}
        for tier in shown:
            agents = [a for a in self.offered(tier, wanted, stage.match)
                      if a.aad_object_id.casefold() not in seen]
            seen.update(a.aad_object_id.casefold() for a in agents)
            names = ", ".join(a.name for a in agents) or "nobody: no agent of the tier matches"
            order = " one at a time, in this order" if tier.mode == "hunt" else ""
            joins = (f"; tier {tier.number + 1} joins after {tier.escalate_after:g} s"
                     if tier.escalate_after else "")
            label = f"tier {tier.number} of {len(every)} ({tier.name})" if len(every) > 1 \
                else self.config.tenant(tier.tenant_id).name
            out.append(f"(dry run: {label}, {tier.mode}: offered to {names}{order}{joins})")
        return out

    def offered(self, tier: TierPlan, wanted: dict[str, int], match: str) -> list[AgentConfig]:
        """The tier's configured agents the chat would be offered to, best first."""
        tenant = self.config.tenant(tier.tenant_id)
        found = [a for a in tenant.agents
                 if tier.includes(a) and qualifies(a.skills, wanted, match)]
        found.sort(key=lambda a: -coverage(a.skills, wanted))
        if match == "closest" and tier.mode == "broadcast" and found:
            best = coverage(found[0].skills, wanted)
            found = [a for a in found if coverage(a.skills, wanted) == best]
        return found

    def pick(self, session: Session, stage: ConnectToAgentStage, name: str
             ) -> tuple[str, str, int | None] | str:
        """(agent id, name, tier) of who accepts; or why nobody can."""
        routing = session.routing
        assert routing is not None
        tiers = active(routing, plan(self.config, session.tenant_id, stage))
        offered = [(a, t) for t in tiers for a in self.offered(t, routing.skills, stage.match)]
        if not name:
            if not offered:
                return ("nobody the active tiers name matches this chat: /escalate to let the "
                        "next tier join, or /timeout")
            agent, tier = offered[0]
            return agent.aad_object_id.casefold(), agent.name, tier.number
        wanted = name.casefold()
        for agent, tier in offered:
            if wanted in (agent.name.casefold(), agent.aad_object_id.casefold()):
                return agent.aad_object_id.casefold(), agent.name, tier.number
        return self._refusal(session, stage, wanted) or ("simulated-agent", name, None)

    def _refusal(self, session: Session, stage: ConnectToAgentStage, wanted: str) -> str | None:
        """Why a configured agent named NAME would not be offered the chat now (None: NAME is
        no agent of the config)."""
        routing = session.routing
        assert routing is not None
        for tier in plan(self.config, session.tenant_id, stage):
            for agent in self.config.tenant(tier.tenant_id).agents:
                if wanted not in (agent.name.casefold(), agent.aad_object_id.casefold()) or (
                        not tier.includes(agent)):
                    continue
                if tier.number > routing.tier:
                    return (f"{agent.name} is in tier {tier.number}, which has not joined yet: "
                            "/escalate first")
                if not qualifies(agent.skills, routing.skills, stage.match):
                    return (f"{agent.name} lacks skills the chat needs "
                            f"({describe(routing.skills)}; they have "
                            f"{describe(agent.skills) or 'none'}), and the match is exact")
                return (f"{agent.name} would not be offered this chat: agents who cover its "
                        f"skills ({describe(routing.skills)}) better are offered it first")
        for tenant in self.config.tenants:
            for agent in tenant.agents:
                if wanted in (agent.name.casefold(), agent.aad_object_id.casefold()):
                    return (f"{agent.name} ({tenant.name}) is in none of this stage's tiers: "
                            "the chat is never offered to them")
        return None

    def cannot_escalate(self, session: Session, stage: ConnectToAgentStage) -> str | None:
        if session.phase != Phase.WAITING or session.routing is None:
            return "/escalate works while the guest waits for an agent"
        if session.routing.tier >= len(plan(self.config, session.tenant_id, stage)):
            return "no tier is left to join: /timeout ends the search"
        return None

    async def escalate(self, turn: Turn, stage: ConnectToAgentStage) -> None:
        """The next tier joins, as its `escalate` timer would: the guest's card, recorded
        with the tier; then whom it adds."""
        session = turn.session
        routing = session.routing
        assert routing is not None and self.cannot_escalate(session, stage) is None
        routing.tier += 1
        line = turn.message("guest", card=turn.bind(turn.template(stage, "escalated_template")))
        line.tier = routing.tier
        joined = plan(self.config, session.tenant_id, stage)[routing.tier - 1]
        said = self.describe(session, stage, [joined])
        turn.after_persist(lambda: self._say(said))

    async def accept(self, turn: Turn, stage: ConnectToAgentStage,
                     picked: tuple[str, str, int | None]) -> None:
        """The agent accepts, as pipelines/routing/accept.py records it: the assignment with
        the tier, the accept's line, the guest's card."""
        agent_id, name, tier = picked
        session = turn.session
        session.phase = Phase.CONNECTED
        session.agent = Assignment(agent_id=agent_id, agent_name=name, tier=tier)
        session.metadata["Agent.Id"] = agent_id
        session.metadata["Agent.Name"] = name
        turn.record(Direction.IN, f"agent:{agent_id}", visible=False, tier=tier,
                    text=f"{name} accepted the chat" + (f" (tier {tier})" if tier else ""))
        await turn.send_card(turn.bind(turn.template(stage, "connected_template")))
        came = f" (tier {tier})" if tier is not None and len(stage.tiers) > 1 else ""
        said = [f"(dry run: {name} accepted{came}. What the guest types is relayed to them; "
                "/end ends the chat)"]
        turn.after_persist(lambda: self._say(said))

    async def _say(self, lines: list[str]) -> None:
        for line in lines:
            self.write(line)

    async def relay_from_guest(self, ctx: Any, guest: Any) -> None:
        self.write("(relayed to the agent)")

    async def guest_leaves(self, ctx: Any, stage: Any) -> None:
        self.leave(ctx, "")

    def leave(self, ctx: Any, why: str) -> None:
        ctx.session.phase = Phase.PIPELINE
        ctx.session.routing = None
        ctx.session.agent = None

    async def after_guest_left(self, session: Any) -> None:
        return None
