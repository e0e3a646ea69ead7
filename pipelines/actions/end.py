"""`end`: close the session with a final state and, optionally, a last card."""

from __future__ import annotations

from typing import Literal

from pipelines.actions.base import Action, Close, Outcome, StageContext
from pipelines.config import StageConfig, TemplateRef
from storage.models import SessionState

FINAL_STATES = ("resolved", "ended")


class EndStage(StageConfig):
    action: Literal["end"] = "end"
    state: Literal["resolved", "ended"] = "resolved"
    template: TemplateRef | None = None

    def template_refs(self) -> dict[str, TemplateRef]:
        return {"template": self.template} if self.template is not None else {}


class EndAction(Action[EndStage]):
    name = "end"
    settings = EndStage

    async def enter(self, ctx: StageContext, stage: EndStage) -> Outcome:
        card = ctx.bind(ctx.template(stage, "template")) if stage.template is not None else None
        return Close(SessionState(stage.state), card)

    def check(self, stage, load):
        return ["`end` cannot have `next`: remove it"] if stage.next else []


ACTION = EndAction()
