"""`question`: ask, wait for the answer, validate it, store it as metadata, go on."""

from __future__ import annotations

from typing import Literal

import regex
from pydantic import Field, field_validator

from cards.builders import chosen_card, question_card
from pipelines.actions.base import Action, Goto, GuestInput, Outcome, StageContext, Wait
from pipelines.config import METADATA_KEY_PATTERN, StageConfig

# an admin's pattern must not let a guest's text stall the server
PATTERN_TIMEOUT_SECONDS = 0.1


class QuestionStage(StageConfig):
    action: Literal["question"] = "question"
    prompt: str = Field(min_length=1, max_length=2000)
    store_as: str = Field(pattern=METADATA_KEY_PATTERN)
    # `card`: an Adaptive Card with an input; `text`: the prompt only, the guest types
    input: Literal["card", "text"] = "card"
    placeholder: str | None = None
    multiline: bool = False
    required: bool = True
    choices: list[str] | None = Field(default=None, min_length=1)
    pattern: str | None = None
    # said when the pattern does not match, e.g. "an employee number like E12345"
    pattern_hint: str | None = None
    max_length: int = Field(default=1000, ge=1, le=10_000)
    next: str

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                regex.compile(value)
            except regex.error as exc:
                raise ValueError(f"not a valid regular expression: {exc}") from exc
        return value

    def metadata_written(self) -> list[str]:
        return [self.store_as]


def validate_answer(stage: QuestionStage, raw: str | None) -> tuple[str | None, str | None]:
    """(value to store, None) or (None, why it was refused)."""
    answer = (raw or "").strip()
    if not answer:
        if stage.required:
            return None, "This question needs an answer."
        return "", None
    if len(answer) > stage.max_length:
        return None, f"Please keep the answer under {stage.max_length} characters."
    if stage.choices:
        for choice in stage.choices:
            if choice.casefold() == answer.casefold():
                return choice, None
        return None, "Please answer with one of: " + ", ".join(stage.choices) + "."
    if stage.pattern:
        try:
            ok = regex.fullmatch(stage.pattern, answer, timeout=PATTERN_TIMEOUT_SECONDS)
        except TimeoutError:
            ok = None
        if not ok:
            if stage.pattern_hint:
                return None, f"That doesn't look right: please enter {stage.pattern_hint}."
            return None, "That answer isn't in the form this question expects. Please try again."
    return answer, None


class QuestionAction(Action[QuestionStage]):
    name = "question"
    settings = QuestionStage

    async def enter(self, ctx: StageContext, stage: QuestionStage) -> Outcome:
        await self._ask(ctx, stage)
        return Wait()

    async def receive(self, ctx: StageContext, stage: QuestionStage, guest: GuestInput) -> Outcome:
        value, problem = validate_answer(stage, guest.answer)
        if problem is not None:
            await ctx.send_text(problem)
            await self._ask(ctx, stage)
            return Wait()
        ctx.set_metadata(stage.store_as, value)
        if guest.invoke:  # Action.Execute: the answered card becomes a record of the answer
            ctx.replace_card = chosen_card(ctx.bind_text(stage.prompt), value or "(no answer)")
        return Goto(stage.next)

    async def _ask(self, ctx: StageContext, stage: QuestionStage) -> None:
        prompt = ctx.bind_text(stage.prompt)
        if stage.input == "text":
            await ctx.send_text(prompt)
            return
        await ctx.send_card(
            question_card(
                prompt,
                session_id=ctx.session.id,
                stage_key=stage.key,
                placeholder=stage.placeholder,
                choices=stage.choices,
                multiline=stage.multiline,
                use_execute=ctx.use_execute,
                required=stage.required,
            )
        )


ACTION = QuestionAction()
