"""`business_hours`: go to `open` or `closed` by the tenant's opening hours, now.

The tenant holds the hours (`timezone`, `opening_hours`, `holidays`; see `pipelines.hours`).
When closed, the stage sets `Tenant.NextOpen` ("Monday 26 January at 09:00 (Europe/Paris)"),
`Tenant.NextOpenIso` (local time with its UTC offset) and, on a holiday, `Tenant.Holiday`
(its name), so the closed stage's card can say when the desk opens again. When open, they
are cleared. "Now" is the engine's clock (`ctx.now()`), which tests set.
"""

from __future__ import annotations

from typing import Literal

from pipelines.actions.base import Action, Goto, LoadCheck, Outcome, StageContext
from pipelines.config import StageConfig
from pipelines.hours import describe

NEXT_OPEN = "Tenant.NextOpen"
NEXT_OPEN_ISO = "Tenant.NextOpenIso"
HOLIDAY = "Tenant.Holiday"


class BusinessHoursStage(StageConfig):
    action: Literal["business_hours"] = "business_hours"
    # where to go while the tenant is open, and while it is closed
    open: str
    closed: str

    def targets(self) -> dict[str, str]:
        return {"open": self.open, "closed": self.closed}

    def metadata_written(self) -> list[str]:
        return [NEXT_OPEN, NEXT_OPEN_ISO, HOLIDAY]


class BusinessHoursAction(Action[BusinessHoursStage]):
    name = "business_hours"
    settings = BusinessHoursStage

    async def enter(self, ctx: StageContext, stage: BusinessHoursStage) -> Outcome:
        schedule = ctx.tenant.schedule()
        now = ctx.now()
        if schedule is None or schedule.is_open(now):
            for key in (NEXT_OPEN, NEXT_OPEN_ISO, HOLIDAY):
                ctx.set_metadata(key, None)
            return Goto(stage.open)
        opens = schedule.next_open(now)
        holiday = schedule.holiday(schedule.local(now).date())
        ctx.set_metadata(NEXT_OPEN, describe(opens, schedule.zone) if opens else None)
        ctx.set_metadata(NEXT_OPEN_ISO, schedule.local(opens).isoformat() if opens else None)
        ctx.set_metadata(HOLIDAY, (holiday.name or "Holiday") if holiday else None)
        return Goto(stage.closed)

    def check(self, stage: BusinessHoursStage, load: LoadCheck) -> list[str]:
        problems = []
        if load.tenant.opening_hours is None:
            problems.append(
                f"tenant {load.tenant.id!r} has no `opening_hours`: add `timezone` and "
                "`opening_hours` (and `holidays` if any) to the tenant"
            )
        if stage.next:
            problems.append("`business_hours` has no `next`: use `open` and `closed`")
        if stage.open == stage.key or stage.closed == stage.key:
            problems.append("`open` and `closed` must lead to other stages, not back here")
        return problems


ACTION = BusinessHoursAction()
