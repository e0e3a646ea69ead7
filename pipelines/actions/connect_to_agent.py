"""`connect_to_agent`: hand the guest to a live agent of the tenant.

The action only holds the settings and the guest's side of the stage; the search, the
offers, the accept race, the relay and the timers are `pipelines.routing.Routing`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from pipelines.actions.base import Action, Goto, GuestInput, LoadCheck, Outcome, StageContext, Wait
from pipelines.config import (
    KEY_PATTERN,
    METADATA_KEY_PATTERN,
    Skills,
    StageConfig,
    TemplateRef,
)
from storage.models import Phase

CANCEL_WORDS = frozenset({"cancel", "stop", "stop waiting", "leave"})
Mode = Literal["broadcast", "hunt"]


class Tier(BaseModel):
    """One group of agents offered the chat, joining the earlier tiers after they had their
    time (pipelines/routing/tiers.py). The group: a department's agents (`tenant`, default
    the stage's own), narrowed to a named list of it (`group`) or to those with `skills`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str | None = Field(default=None, min_length=1, max_length=60)
    tenant: str | None = Field(default=None, pattern=KEY_PATTERN)
    group: str | None = Field(default=None, pattern=KEY_PATTERN)
    skills: Skills = Field(default_factory=dict)
    # how this tier's agents are offered (default: the stage's `mode`)
    mode: Mode | None = None
    # seconds this tier is offered before the next one joins (not on the last tier)
    escalate_after: float | None = Field(default=None, ge=1, le=24 * 3600)

    @model_validator(mode="after")
    def _one_group(self) -> Tier:
        if self.group is not None and self.skills:
            raise ValueError("a tier names its agents by `group` or by `skills`, not both")
        return self


class ConnectToAgentStage(StageConfig):
    action: Literal["connect_to_agent"] = "connect_to_agent"
    # broadcast: offer everyone available at once; hunt: one agent at a time, round-robin
    mode: Literal["broadcast", "hunt"] = "broadcast"
    # hunt: how long one agent has to accept before the next one is offered (seconds)
    accept_timeout: float = Field(default=60, ge=1, le=3600)
    # how long the guest waits at most before `on_timeout` (seconds)
    max_wait: float = Field(default=600, ge=1, le=24 * 3600)
    # "still searching" every so many seconds (None: never)
    searching_every: float | None = Field(default=120, ge=1, le=3600)
    on_timeout: str
    # the guest cancelled (or left) while waiting or chatting
    on_drop: str
    # after the agent ends the chat (typically feedback)
    next: str
    waiting_template: TemplateRef = "builtin:agent_waiting"
    searching_template: TemplateRef = "builtin:agent_searching"
    connected_template: TemplateRef = "builtin:agent_connected"
    agent_left_template: TemplateRef = "builtin:agent_left"
    guest_left_template: TemplateRef = "builtin:guest_left"
    # the skills the chat requires (name -> lowest level), and more from metadata: a
    # metadata name -> its value (case-insensitive) -> skills (`Answers.Language: {French:
    # language:fr}`)
    skills: Skills = Field(default_factory=dict)
    skills_from: dict[str, dict[str, Skills]] = Field(default_factory=dict)
    # exact: only agents with every required skill at its level; closest: the agents who
    # cover the requirement best, then the least busy
    match: Literal["exact", "closest"] = "exact"
    # escalation: groups of agents offered one after the other, each adding to the earlier
    tiers: list[Tier] = Field(default_factory=list, max_length=10)
    # the guest's card when the next tier joins
    escalated_template: TemplateRef = "builtin:agent_escalated"

    @field_validator("skills_from")
    @classmethod
    def _skills_from(cls, value: dict[str, dict[str, dict[str, int]]]
                     ) -> dict[str, dict[str, dict[str, int]]]:
        import re

        for name, values in value.items():
            if not re.match(METADATA_KEY_PATTERN, name):
                raise ValueError(f"{name!r} is not a metadata name: use one like "
                                 "Answers.Language")
            if not values:
                raise ValueError(f"`skills_from.{name}` is empty: map its values to skills")
        return {name: {k.strip().casefold(): v for k, v in values.items()}
                for name, values in value.items()}

    @model_validator(mode="after")
    def _tiers(self) -> ConnectToAgentStage:
        joins = 0.0
        for number, tier in enumerate(self.tiers, start=1):
            last = number == len(self.tiers)
            if last and tier.escalate_after is not None:
                raise ValueError(f"tier {number} is the last: it has no `escalate_after` "
                                 "(nobody joins after it; `max_wait` ends the search)")
            if not last and tier.escalate_after is None:
                raise ValueError(f"tier {number} needs `escalate_after`: the seconds it is "
                                 f"offered before tier {number + 1} joins")
            joins += tier.escalate_after or 0.0
            if not last and joins >= self.max_wait:
                raise ValueError(f"tier {number + 1} would join after {joins:g} s, past "
                                 f"`max_wait` ({self.max_wait:g} s): shorten `escalate_after` "
                                 "or lengthen `max_wait`")
        return self

    def targets(self) -> dict[str, str]:
        return {"next": self.next, "on_timeout": self.on_timeout, "on_drop": self.on_drop}

    def template_refs(self) -> dict[str, TemplateRef]:
        return {
            "waiting_template": self.waiting_template,
            "searching_template": self.searching_template,
            "connected_template": self.connected_template,
            "agent_left_template": self.agent_left_template,
            "guest_left_template": self.guest_left_template,
            "escalated_template": self.escalated_template,
        }

    def metadata_read(self) -> dict[str, list[str]]:
        return {"skills_from": list(self.skills_from)} if self.skills_from else {}


def wants_to_leave(guest: GuestInput) -> bool:
    if guest.verb == "cancel":
        return True
    return guest.value is None and (guest.text or "").strip().casefold() in CANCEL_WORDS


class ConnectToAgentAction(Action[ConnectToAgentStage]):
    name = "connect_to_agent"
    settings = ConnectToAgentStage

    async def enter(self, ctx: StageContext, stage: ConnectToAgentStage) -> Outcome:
        await ctx.routing.start(ctx, stage)
        return Wait()

    async def receive(
        self, ctx: StageContext, stage: ConnectToAgentStage, guest: GuestInput
    ) -> Outcome:
        session = ctx.session
        if wants_to_leave(guest):
            await ctx.routing.guest_leaves(ctx, stage)
            return Goto(stage.on_drop)
        if session.phase == Phase.CONNECTED:
            await ctx.routing.relay_from_guest(ctx, guest)
            return Wait()
        if session.phase == Phase.WAITING:
            await ctx.send_text(
                "You're still in the queue: someone will pick up your chat soon. "
                "Type **cancel** to stop waiting."
            )
            return Wait()
        # back at this stage after a restart of the search (e.g. the agent left)
        return await self.enter(ctx, stage)

    def check(self, stage: ConnectToAgentStage, load: LoadCheck) -> list[str]:
        from pipelines.routing.tiers import check_stage

        problems = []
        if not load.tenant.agents and not stage.tiers:
            problems.append(
                f"tenant {load.tenant.id!r} has no `agents`: add the people who take its chats"
            )
        hunts = stage.mode == "hunt" or any(t.mode == "hunt" for t in stage.tiers)
        if hunts and stage.accept_timeout >= stage.max_wait:
            problems.append("`accept_timeout` must be shorter than `max_wait` in hunt mode")
        return problems + check_stage(stage, load)


ACTION = ConnectToAgentAction()
