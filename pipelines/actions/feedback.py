"""`feedback`: ask for a rating from 1 to 5 and an optional comment, store them, go on.

The card has radio buttons (`style: choices`, with Send) or one button per rating
(`style: buttons`), an optional comment box, and Skip. Typed "4", "4/5", "4 stars" or
"4 - quick and friendly" (a rating, then a comment) work too; anything else says why and
asks again. The rating is stored as `<prefix>.Rating` (an int), the comment as
`<prefix>.Comment` (prefix `Feedback` by default). The natural last stage after an agent
ends a chat (`connect_to_agent`'s `next`), before `end`.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, field_validator

from cards.builders import RATING_LABELS, chosen_card, feedback_card
from pipelines.actions.base import Action, Goto, GuestInput, Outcome, StageContext, Wait
from pipelines.config import METADATA_KEY_PATTERN, StageConfig
from pipelines.typed_number import whole_number

SKIP_WORDS = frozenset({"skip", "no thanks", "no thank you", "later", "not now"})
# the engine's namespaces: a feedback prefix must not overwrite them
RESERVED_NAMESPACES = frozenset({"Session", "Tenant", "Agent", "Guest"})
_TYPED = re.compile(
    r"^\s*(?P<rating>[+-]?\d+(?:[.,]\d+)?)\s*(?:(?:/|out\s+of)\s*5|stars?)?"
    r"(?P<rest>(?:[\s\-\u2013\u2014:,;.!].*)?)$",
    re.IGNORECASE | re.DOTALL,
)
OUT_OF_RANGE = "A rating goes from 1 (poor) to 5 (excellent). Please pick one of those."
NOT_A_RATING = "Please rate this chat with a number from 1 (poor) to 5 (excellent)."


class FeedbackStage(StageConfig):
    action: Literal["feedback"] = "feedback"
    prompt: str = Field(
        default="How did we do? Please rate this chat from 1 (poor) to 5 (excellent).",
        min_length=1,
        max_length=2000,
    )
    # radio buttons and Send, or one button per rating
    style: Literal["choices", "buttons"] = "choices"
    # offer a comment box
    comment: bool = True
    comment_placeholder: str | None = Field(default="Anything we could do better?",
                                            max_length=200)
    max_comment_length: int = Field(default=1000, ge=1, le=4000)
    # metadata names: <prefix>.Rating and <prefix>.Comment
    prefix: str = "Feedback"
    skippable: bool = True
    # said once a rating is stored (None: nothing)
    thanks: str | None = Field(default="Thank you for your feedback!", max_length=2000)
    next: str

    @field_validator("prefix")
    @classmethod
    def _not_reserved(cls, value: str) -> str:
        if not re.match(METADATA_KEY_PATTERN, value):
            raise ValueError(f"{value!r} is not a metadata name: use one like Feedback")
        if value.split(".", 1)[0] in RESERVED_NAMESPACES:
            raise ValueError(
                f"{value!r} would overwrite the bot's own metadata: use a prefix like Feedback"
            )
        return value

    @property
    def rating_key(self) -> str:
        return f"{self.prefix}.Rating"

    @property
    def comment_key(self) -> str:
        return f"{self.prefix}.Comment"

    def metadata_written(self) -> list[str]:
        return [self.rating_key, self.comment_key]

    def text_templates(self) -> dict[str, str]:
        return {"thanks": self.thanks} if self.thanks else {}


def parse_rating(raw: Any) -> tuple[int | None, str | None]:
    """(rating, None) or (None, why it is not one)."""
    text = str(raw).strip() if raw is not None else ""
    if not re.fullmatch(r"[+-]?\d+(?:[.,]\d+)?", text):
        return None, NOT_A_RATING
    if not re.fullmatch(r"\d+", text):
        return None, "Please give a whole number from 1 (poor) to 5 (excellent)."
    rating = whole_number(text, 1, 5)
    if rating is None:
        return None, OUT_OF_RANGE
    return rating, None


def read_feedback(guest: GuestInput) -> tuple[int | None, str | None, str | None]:
    """(rating, comment, None) from a card or typed text, or (None, None, why not)."""
    value = guest.value or {}
    comment = value.get("comment") if isinstance(value.get("comment"), str) else None
    if guest.verb == "rate":
        raw = guest.choice
    elif guest.verb is not None or "rating" in value:
        raw = value.get("rating")
        if raw in (None, ""):
            return None, None, "Please choose a rating from 1 (poor) to 5 (excellent)."
    else:
        match = _TYPED.match(guest.text or "")
        if match is None:
            return None, None, NOT_A_RATING
        raw = match["rating"]
        comment = match["rest"].lstrip(" \t\r\n-\u2013\u2014:,;.!") or None
    rating, problem = parse_rating(raw)
    if problem is not None:
        return None, None, problem
    return rating, (comment.strip() or None) if comment else None, None


class FeedbackAction(Action[FeedbackStage]):
    name = "feedback"
    settings = FeedbackStage

    async def enter(self, ctx: StageContext, stage: FeedbackStage) -> Outcome:
        await ctx.send_card(self._card(ctx, stage))
        return Wait()

    async def receive(
        self, ctx: StageContext, stage: FeedbackStage, guest: GuestInput
    ) -> Outcome:
        typed = (guest.text or "").strip().casefold().rstrip(".!")
        if stage.skippable and (
            guest.verb == "skip" or (guest.verb is None and typed in SKIP_WORDS)
        ):
            if guest.invoke:
                ctx.replace_card = chosen_card(ctx.bind_text(stage.prompt), "Skipped")
            return Goto(stage.next)
        rating, comment, problem = read_feedback(guest)
        if problem is None and comment and len(comment) > stage.max_comment_length:
            problem = f"Please keep the comment under {stage.max_comment_length} characters."
        if problem is not None or rating is None:
            hint = " Or type **skip**." if stage.skippable else ""
            await ctx.send_text((problem or NOT_A_RATING) + hint)
            await ctx.send_card(self._card(ctx, stage))
            return Wait()
        ctx.set_metadata(stage.rating_key, rating)
        if comment and stage.comment:
            ctx.set_metadata(stage.comment_key, comment)
        if guest.invoke:
            shown = f"{rating}/5 - {RATING_LABELS[rating]}"
            ctx.replace_card = chosen_card(ctx.bind_text(stage.prompt), shown)
        if stage.thanks:
            await ctx.send_text(ctx.bind_text(stage.thanks))
        return Goto(stage.next)

    def _card(self, ctx: StageContext, stage: FeedbackStage) -> dict:
        return feedback_card(
            ctx.bind_text(stage.prompt),
            session_id=ctx.session.id,
            stage_key=stage.key,
            use_execute=ctx.use_execute,
            style=stage.style,
            comment=stage.comment,
            comment_placeholder=stage.comment_placeholder,
            max_comment_length=stage.max_comment_length,
            skippable=stage.skippable,
        )


ACTION = FeedbackAction()
