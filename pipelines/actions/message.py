"""`message`: send a card template, then go on."""

from __future__ import annotations

from typing import Literal

from pipelines.actions.base import Action, Goto, Outcome, StageContext, Wait
from pipelines.config import StageConfig, TemplateRef


class MessageStage(StageConfig):
    action: Literal["message"] = "message"
    template: TemplateRef
    # with no `next`, the pipeline rests here: later guest text re-sends the card
    next: str | None = None

    def template_refs(self) -> dict[str, TemplateRef]:
        return {"template": self.template}


class MessageAction(Action[MessageStage]):
    name = "message"
    settings = MessageStage

    async def enter(self, ctx: StageContext, stage: MessageStage) -> Outcome:
        await ctx.send_card(ctx.bind(ctx.template(stage, "template")))
        return Goto(stage.next) if stage.next else Wait()


ACTION = MessageAction()
