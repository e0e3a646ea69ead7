"""Who can be offered a chat now, found through the agents index, never a department scan.

An offer round asks the agents index (storage/agents.py: one `seat` per department, and per
skill there, that an agent publishes while they can take a chat) for the open seats of one
pool: the tier's first skill, else the chat's first required skill when the match is exact,
else the whole department; least busy first, at most `CANDIDATES`. A named list's members
are read directly (a list is short). Only then are those agents' records read, and each is
checked against the config as it is now (still in the tier, its skills, the chat's required
skills under the stage's match, reachable, available, room in that department), so an index
entry the config has since made wrong never leads to an offer.

What an agent's record publishes comes from the config too (`memberships`, the record's
`profile`): the departments they serve, their capacity and skills there.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

from pipelines.config import AgentConfig, SwitchboardConfig, TenantConfig
from pipelines.routing.common import Desk, log
from pipelines.routing.skills import coverage, qualifies
from pipelines.routing.tiers import TierPlan
from storage.agents import ANY_SKILL, AgentRecord, Membership, Presence, pool

# the most agents one pool's query returns to an offer round
CANDIDATES = 50
# how often (seconds) this process checks a department's configured agents for the ones who
# never installed the app, to say so in the log (the only read of a whole department)
AUDIT_EVERY = 3600.0


@dataclass(frozen=True, slots=True)
class Candidate:
    record: AgentRecord
    agent: AgentConfig
    # the department whose capacity applies (the tier's)
    tenant_id: str
    score: float

    @property
    def agent_id(self) -> str:
        return self.record.agent_id


def memberships(config: SwitchboardConfig, agent_id: str) -> list[Membership]:
    """The departments an agent serves, with their capacity and skills there."""
    out = []
    for tenant in config.tenants_of_agent(agent_id):
        agent = tenant.agent(agent_id)
        assert agent is not None
        out.append(Membership(tenant_id=tenant.id, capacity=tenant.capacity_of(agent),
                              skills=dict(agent.skills)))
    return out


class Roster:
    def __init__(self, desk: Desk) -> None:
        self.desk = desk
        # department -> when this process last looked for agents who never installed
        self._audited: dict[str, float] = {}

    async def candidates(self, tier: TierPlan, wanted: dict[str, int], match: str, *,
                         exclude: Iterable[str] = ()) -> list[Candidate]:
        """The tier's agents who can take the chat now, best first: by coverage of `wanted`
        (closest), then least busy, then the one offered a chat longest ago."""
        config = self.desk.config
        tenant = config.tenant(tier.tenant_id)
        if tier.members is not None:
            ids = sorted(tier.members)
        else:
            skill = next(iter(tier.skills), None)
            if skill is None and match == "exact":
                skill = next(iter(sorted(wanted)), None)
            ids = await self.desk.agents.open_seats(pool(tenant.id, skill or ANY_SKILL),
                                                    CANDIDATES)
        skip = {a.casefold() for a in exclude}
        ids = [a for a in ids if a.casefold() not in skip]
        records = await self.desk.agents.many(ids)
        out = []
        for agent_id in ids:
            agent = tenant.agent(agent_id)
            record = records.get(agent_id.casefold())
            if agent is None or record is None or not tier.includes(agent):
                continue
            if not record.reachable or record.presence != Presence.AVAILABLE:
                continue
            if record.load() >= tenant.capacity_of(agent):
                continue
            if not qualifies(agent.skills, wanted, match):
                continue
            out.append(Candidate(record, agent, tenant.id, coverage(agent.skills, wanted)))
        out.sort(key=lambda c: (-c.score, c.record.load(), c.record.last_offered_at,
                                c.record.name))
        return out

    async def audit(self, tenant: TenantConfig) -> None:
        """Log the department's agents who cannot be offered chats (never installed the
        app): once per `AUDIT_EVERY` per process, after an offer round's write, the one
        read of a whole department."""
        now = time.monotonic()
        if now - self._audited.get(tenant.id, -AUDIT_EVERY) < AUDIT_EVERY:
            return
        self._audited[tenant.id] = now
        records = await self.desk.agents.many(a.aad_object_id for a in tenant.agents)
        for agent in tenant.agents:
            record = records.get(agent.aad_object_id.casefold())
            if record is None or not record.reachable:
                log.warning(
                    "agent cannot be offered chats: they have not installed the app",
                    extra={"tenant": tenant.id, "agent": agent.aad_object_id,
                           "agent_name": agent.name},
                )
