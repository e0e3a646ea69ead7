"""`connect_to_agent`: hand the guest to a live agent of the tenant.

The action only holds the settings and the guest's side of the stage; the search, the
offers, the accept race, the relay and the timers are `pipelines.routing.Routing`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from pipelines.actions.base import Action, Goto, GuestInput, LoadCheck, Outcome, StageContext, Wait
from pipelines.config import StageConfig, TemplateRef
from storage.models import Phase

CANCEL_WORDS = frozenset({"cancel", "stop", "stop waiting", "leave"})


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

    def targets(self) -> dict[str, str]:
        return {"next": self.next, "on_timeout": self.on_timeout, "on_drop": self.on_drop}

    def template_refs(self) -> dict[str, TemplateRef]:
        return {
            "waiting_template": self.waiting_template,
            "searching_template": self.searching_template,
            "connected_template": self.connected_template,
            "agent_left_template": self.agent_left_template,
            "guest_left_template": self.guest_left_template,
        }


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
        problems = []
        if not load.tenant.agents:
            problems.append(
                f"tenant {load.tenant.id!r} has no `agents`: add the people who take its chats"
            )
        if stage.mode == "hunt" and stage.accept_timeout >= stage.max_wait:
            problems.append("`accept_timeout` must be shorter than `max_wait` in hunt mode")
        return problems


ACTION = ConnectToAgentAction()
