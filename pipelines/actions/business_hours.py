"""`business_hours`: go to `open` or `closed` by the tenant's opening hours, now.

The tenant holds the hours (`timezone`, `opening_hours`, `holidays`; see `pipelines.hours`).
When closed, the stage sets `Tenant.NextOpen` ("Monday 26 January at 09:00 (Europe/Paris)"),
`Tenant.NextOpenIso` (local time with its UTC offset) and, on a holiday, `Tenant.Holiday`
(its name), so the closed card can say when the desk opens again. When open, they are
cleared. "Now" is the engine's clock (`ctx.now()`), which tests set.

What happens while closed is one of two things:
- `closed: <stage>`: the chat goes there (often an `end` stage with a card): it is over.
- `closed_template: <card>`: the stage sends the card and keeps the chat in this tenant. When
  the guest writes again the hours are checked again: still closed, the card is sent again;
  open, `reopened` (a text, if set) is said and the chat goes on at `open`. That is what a
  card saying "write to us again then and we'll pick it up" needs.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from pipelines.actions.base import Action, Goto, GuestInput, LoadCheck, Outcome, StageContext, Wait
from pipelines.config import StageConfig, TemplateRef
from pipelines.hours import describe

NEXT_OPEN = "Tenant.NextOpen"
NEXT_OPEN_ISO = "Tenant.NextOpenIso"
HOLIDAY = "Tenant.Holiday"
CLOSED_TEMPLATE = "closed_template"


class BusinessHoursStage(StageConfig):
    action: Literal["business_hours"] = "business_hours"
    # where to go while the tenant is open
    open: str
    # while closed: go to this stage, or send this card and wait here (exactly one of them)
    closed: str | None = None
    closed_template: TemplateRef | None = None
    # said when a guest who waited here writes again and the tenant is open (closed_template)
    reopened: str | None = Field(default=None, min_length=1, max_length=2000)

    @model_validator(mode="after")
    def _one_way_when_closed(self) -> BusinessHoursStage:
        if (self.closed is None) == (self.closed_template is None):
            raise ValueError(
                "give exactly one of `closed` (the stage to go to while closed) and "
                "`closed_template` (a card to send while closed, keeping the chat here)"
            )
        if self.reopened is not None and self.closed_template is None:
            raise ValueError("`reopened` goes with `closed_template`: with `closed` nobody waits")
        return self

    def targets(self) -> dict[str, str]:
        return {"open": self.open, **({"closed": self.closed} if self.closed else {})}

    def template_refs(self) -> dict[str, TemplateRef]:
        return {CLOSED_TEMPLATE: self.closed_template} if self.closed_template else {}

    def text_templates(self) -> dict[str, str]:
        return {"reopened": self.reopened} if self.reopened else {}

    def metadata_written(self) -> list[str]:
        return [NEXT_OPEN, NEXT_OPEN_ISO, HOLIDAY]


class BusinessHoursAction(Action[BusinessHoursStage]):
    name = "business_hours"
    settings = BusinessHoursStage

    async def enter(self, ctx: StageContext, stage: BusinessHoursStage) -> Outcome:
        if self._open_now(ctx):
            return Goto(stage.open)
        if stage.closed is not None:
            return Goto(stage.closed)
        await ctx.send_card(ctx.bind(ctx.template(stage, CLOSED_TEMPLATE)))
        return Wait()

    async def receive(self, ctx: StageContext, stage: BusinessHoursStage,
                      guest: GuestInput) -> Outcome:
        """The guest wrote again while waiting for the tenant to open."""
        if not self._open_now(ctx):
            return await self.enter(ctx, stage)
        if stage.reopened:
            await ctx.send_text(ctx.bind_text(stage.reopened))
        return Goto(stage.open)

    def _open_now(self, ctx: StageContext) -> bool:
        """Whether the tenant is open; sets or clears the Tenant.* keys to match."""
        schedule = ctx.tenant.schedule()
        now = ctx.now()
        if schedule is None or schedule.is_open(now):
            for key in (NEXT_OPEN, NEXT_OPEN_ISO, HOLIDAY):
                ctx.set_metadata(key, None)
            return True
        opens = schedule.next_open(now)
        holiday = schedule.holiday(schedule.local(now).date())
        ctx.set_metadata(NEXT_OPEN, describe(opens, schedule.zone) if opens else None)
        ctx.set_metadata(NEXT_OPEN_ISO, schedule.local(opens).isoformat() if opens else None)
        ctx.set_metadata(HOLIDAY, (holiday.name or "Holiday") if holiday else None)
        return False

    def check(self, stage: BusinessHoursStage, load: LoadCheck) -> list[str]:
        problems = []
        if load.tenant.opening_hours is None:
            problems.append(
                f"tenant {load.tenant.id!r} has no `opening_hours`: add `timezone` and "
                "`opening_hours` (and `holidays` if any) to the tenant"
            )
        if stage.next:
            problems.append("`business_hours` has no `next`: use `open` and `closed`")
        if stage.key in (stage.open, stage.closed):
            problems.append("`open` and `closed` must lead to other stages, not back here")
        return problems


ACTION = BusinessHoursAction()
