"""`menu`: a card of choices, each branching to its own stage."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from cards.builders import chosen_card, menu_card
from pipelines.actions.base import Action, Goto, GuestInput, Outcome, StageContext, Wait
from pipelines.config import KEY_PATTERN, METADATA_KEY_PATTERN, StageConfig


class MenuChoice(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=KEY_PATTERN)
    title: str = Field(min_length=1, max_length=100)
    next: str


class MenuStage(StageConfig):
    action: Literal["menu"] = "menu"
    prompt: str = Field(min_length=1, max_length=2000)
    choices: list[MenuChoice] = Field(min_length=1, max_length=20)
    # optional: remember the chosen title as metadata (e.g. Answers.Department)
    store_as: str | None = Field(default=None, pattern=METADATA_KEY_PATTERN)

    @model_validator(mode="after")
    def _unique(self) -> MenuStage:
        for attr in ("id", "title"):
            seen: set[str] = set()
            for choice in self.choices:
                value = getattr(choice, attr).casefold()
                if value in seen:
                    raise ValueError(f"two choices have the {attr} {getattr(choice, attr)!r}")
                seen.add(value)
        return self

    def targets(self) -> dict[str, str]:
        return {f"choice {c.id}": c.next for c in self.choices}

    def metadata_written(self) -> list[str]:
        return [self.store_as] if self.store_as else []


def pick(stage: MenuStage, guest: GuestInput) -> MenuChoice | None:
    """The button pressed, or typed text that is a choice's title, id or number."""
    if guest.choice is not None:
        return next((c for c in stage.choices if c.id == guest.choice), None)
    typed = (guest.answer or "").strip().casefold()
    if not typed:
        return None
    for number, choice in enumerate(stage.choices, start=1):
        if typed in (choice.title.casefold(), choice.id.casefold(), str(number)):
            return choice
    return None


class MenuAction(Action[MenuStage]):
    name = "menu"
    settings = MenuStage

    async def enter(self, ctx: StageContext, stage: MenuStage) -> Outcome:
        await ctx.send_card(self._card(ctx, stage))
        return Wait()

    async def receive(self, ctx: StageContext, stage: MenuStage, guest: GuestInput) -> Outcome:
        choice = pick(stage, guest)
        if choice is None:
            titles = ", ".join(c.title for c in stage.choices)
            await ctx.send_text(f"Please pick one of the options: {titles}.")
            await ctx.send_card(self._card(ctx, stage))
            return Wait()
        if stage.store_as:
            ctx.set_metadata(stage.store_as, choice.title)
        if guest.invoke:
            ctx.replace_card = chosen_card(ctx.bind_text(stage.prompt), choice.title)
        return Goto(choice.next)

    def _card(self, ctx: StageContext, stage: MenuStage) -> dict:
        return menu_card(
            ctx.bind_text(stage.prompt),
            [(c.id, c.title) for c in stage.choices],
            session_id=ctx.session.id,
            stage_key=stage.key,
            use_execute=ctx.use_execute,
        )


ACTION = MenuAction()
