"""Escalation tiers: who is offered a chat, in which order, and when the next group joins.

A `connect_to_agent` stage's `tiers` are groups of agents: a department's agents (the
stage's own, or another's), narrowed to a named list of it or to those with some skills.
The first tier is offered at once; each later one joins when the one before it has had its
`escalate_after` seconds (an `escalate` timer, durable like the others). A tier adds to the
earlier ones, as Chime's escalation does: their offers stay open and their agents can still
be offered the chat, until someone accepts or `max_wait` ends the search. The guest gets the
stage's `escalated_template` card each time a tier joins. A stage without tiers has one:
its own department, in its `mode`.

Each tier has its own mode: broadcast (every agent of the tier who can take the chat now)
or hunt (one at a time, `accept_timeout` each, a timer per tier). An agent in two tiers is
offered the chat once, in the earlier.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from pipelines.actions.base import LoadCheck
from pipelines.actions.connect_to_agent import ConnectToAgentStage, Tier
from pipelines.config import AgentConfig, SwitchboardConfig, TenantConfig
from pipelines.routing.skills import describe, known_skills, qualifies
from storage.models import Search

ESCALATE = "escalate"
ACCEPT_TIMEOUT = "accept_timeout"


@dataclass(frozen=True, slots=True)
class TierPlan:
    """A tier as the search uses it: its number (1 = first), its department, its group."""

    number: int
    name: str
    tenant_id: str
    mode: str
    # a named list's agents (AAD object ids, casefolded); None: the whole department
    members: frozenset[str] | None
    # the tier's own skills (every one required, whatever the stage's `match`)
    skills: dict[str, int]
    escalate_after: float | None

    @property
    def accept_timer(self) -> str:
        """The kind of this tier's hunt timer (the first tier's keeps the old name)."""
        return ACCEPT_TIMEOUT if self.number == 1 else f"{ACCEPT_TIMEOUT}.{self.number}"

    def includes(self, agent: AgentConfig) -> bool:
        """Whether a configured agent of the tier's department belongs to the tier."""
        if self.members is not None and agent.aad_object_id.casefold() not in self.members:
            return False
        return qualifies(agent.skills, self.skills, "exact")


def plan(config: SwitchboardConfig, tenant_id: str, stage: ConnectToAgentStage
         ) -> list[TierPlan]:
    """The stage's tiers, in order (one, the department itself, when it names none)."""
    if not stage.tiers:
        tenant = config.tenant(tenant_id)
        return [TierPlan(1, tenant.name, tenant_id, stage.mode, None, {}, None)]
    return [_plan(config, tenant_id, stage, number, tier)
            for number, tier in enumerate(stage.tiers, start=1)]


def _plan(config: SwitchboardConfig, tenant_id: str, stage: ConnectToAgentStage,
          number: int, tier: Tier) -> TierPlan:
    tenant = config.tenant(tier.tenant or tenant_id)
    members = None
    if tier.group is not None:
        members = frozenset(a.aad_object_id.casefold() for a in tenant.group(tier.group))
    name = tier.name or tier.group or (describe(tier.skills) if tier.skills else tenant.name)
    return TierPlan(number, name, tenant.id, tier.mode or stage.mode, members,
                    dict(tier.skills), tier.escalate_after)


def active(search: Search, tiers: list[TierPlan]) -> list[TierPlan]:
    return tiers[:max(1, min(search.tier, len(tiers)))]


def tried(search: Search, tier: int) -> list[str]:
    """The hunt's agents already tried in a tier, in order (a list the search keeps)."""
    if tier == 1:
        return search.tried
    return search.tier_tried.setdefault(str(tier), [])


def reset_tried(search: Search, tier: int) -> None:
    if tier == 1:
        search.tried = []
    else:
        search.tier_tried[str(tier)] = []


def reaching(config: SwitchboardConfig, agent_id: str) -> list[TenantConfig]:
    """The departments whose waiting chats may be offered to this agent: theirs, and those
    whose stages have a tier naming their department or a group they are in."""
    mine = config.tenants_of_agent(agent_id)
    ids = {t.id for t in mine}
    out = list(mine)
    for tenant in config.tenants:
        if tenant.id in ids or not tenant.enabled:
            continue
        for pipeline in tenant.pipelines:
            for stage in pipeline.stages:
                if isinstance(stage, ConnectToAgentStage) and any(
                        (t.tenant or tenant.id) in ids for t in stage.tiers):
                    ids.add(tenant.id)
                    out.append(tenant)
    return out


# -- the config's checks (`config validate`, and the bot's start) ----------------------


def check_stage(stage: ConnectToAgentStage, load: LoadCheck) -> list[str]:
    """Unknown skills, tiers that name no agent, groups and departments that do not exist."""
    config = load.config
    problems = _unknown_skills(stage, config)
    static = dict(stage.skills)
    if not stage.tiers:
        if static and stage.match == "exact" and load.tenant.agents and not any(
                qualifies(a.skills, static, "exact") for a in load.tenant.agents):
            problems.append(f"no agent of {load.tenant.name} has every skill the stage "
                            f"requires ({describe(static)}): give one of them the skills, or "
                            "use `match: closest`")
        return problems
    for number, tier in enumerate(stage.tiers, start=1):
        where = f"tier {number}"
        target = tier.tenant or load.tenant.id
        if target in load.broken_tenants:
            continue
        tenant = next((t for t in config.tenants if t.id == target), None)
        if tenant is None:
            known = ", ".join(sorted(t.id for t in config.tenants))
            problems.append(f"{where}: `tenant` {target!r} is not a department: use one of "
                            f"{known}")
            continue
        if not tenant.enabled:
            problems.append(f"{where}: department {target!r} is disabled: enable it or name "
                            "another")
            continue
        if tier.group is not None and tier.group not in tenant.groups:
            groups = ", ".join(sorted(tenant.groups)) or "none"
            problems.append(f"{where}: {tenant.name} has no group {tier.group!r} (its "
                            f"`groups`: {groups})")
            continue
        tier_plan = _plan(config, load.tenant.id, stage, number, tier)
        agents = [a for a in tenant.agents if tier_plan.includes(a)]
        if not agents:
            problems.append(f"{where} names no agent: {_no_agent(tenant, tier)}")
        elif static and stage.match == "exact" and not any(
                qualifies(a.skills, static, "exact") for a in agents):
            problems.append(f"{where} names no agent with every skill the stage requires "
                            f"({describe(static)}): with `match: exact` it would never be "
                            "offered; give its agents the skills, or use `match: closest`")
    return problems


def _no_agent(tenant: TenantConfig, tier: Tier) -> str:
    if not tenant.agents:
        return f"{tenant.name} has no `agents`"
    if tier.skills:
        return f"no agent of {tenant.name} has {describe(tier.skills)}"
    return f"group {tier.group!r} has no agent of {tenant.name}"


def _unknown_skills(stage: ConnectToAgentStage, config: SwitchboardConfig) -> list[str]:
    known = known_skills(config)
    named: dict[str, str] = {}
    for skill in stage.skills:
        named.setdefault(skill, "`skills`")
    for name, values in stage.skills_from.items():
        for skills in values.values():
            for skill in skills:
                named.setdefault(skill, f"`skills_from.{name}`")
    for number, tier in enumerate(stage.tiers, start=1):
        for skill in tier.skills:
            named.setdefault(skill, f"tier {number} `skills`")
    out = []
    for skill, where in named.items():
        if skill in known:
            continue
        close = difflib.get_close_matches(skill, sorted(known), n=1)
        hint = f": did you mean {close[0]!r}?" if close else (
            ": give it to the agents who have it (`skills:` of an agent)")
        out.append(f"{where}: unknown skill {skill!r}, no agent has it{hint}")
    return out
