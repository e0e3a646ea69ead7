"""`faq`: search the tenant's knowledge base for the guest's question and offer the answers.

The question is a metadata value (`question_from`, e.g. the answer to an earlier question).
When the best article scores at least `min_score`, it and the next best (at most
`max_results`, each scoring at least half the best) are shown on one card, each with "This
solved it"; under them, "I still need help". Typed "solved" / "yes" (the best article) and
"still need help" / "no" work too.

- Solved: the session closes as `deflected`, with `Faq.ArticleId` and `Faq.ArticleTitle`.
- Still need help: on to `next` (`Faq.Suggested` keeps the ids that were offered).
- Nothing scores high enough (or there is no question): straight to `next`, no card.

The index is built once per tenant when the config loads (`pipelines.knowledge`).
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator

from cards.builders import chosen_card, faq_card
from pipelines.actions.base import (
    Action,
    Close,
    Goto,
    GuestInput,
    LoadCheck,
    Outcome,
    StageContext,
    Wait,
)
from pipelines.config import METADATA_KEY_PATTERN, StageConfig, TemplateRef
from pipelines.knowledge import Article
from storage.models import SessionState

ARTICLE_ID = "Faq.ArticleId"
ARTICLE_TITLE = "Faq.ArticleTitle"
SUGGESTED = "Faq.Suggested"
# the score the best match needs by default, in distinctive words (pipelines.knowledge);
# measured on examples/kb and tests/faq_questions.yaml (docs/faq.md)
DEFAULT_MIN_SCORE = 0.5
# the other matches are shown when they score at least this share of the best one
RELATED_SHARE = 0.5

SOLVED_WORDS = frozenset({
    "solved", "yes", "y", "yep", "yeah", "this solved it", "that solved it", "it solved it",
    "solved it", "it worked", "that worked", "this worked", "fixed", "fixed it",
})
MORE_WORDS = frozenset({
    "still need help", "i still need help", "no", "n", "nope", "not solved", "not really",
    "didnt help", "did not help", "it didnt help", "that didnt help", "more help",
})


class FaqStage(StageConfig):
    action: Literal["faq"] = "faq"
    # the metadata name that holds the guest's question, e.g. Answers.Need
    question_from: str
    max_results: int = Field(default=3, ge=1, le=5)
    min_score: float = Field(default=DEFAULT_MIN_SCORE, ge=0, le=100)
    prompt: str = Field(
        default="These articles may answer your question:", min_length=1, max_length=2000
    )
    # the last card when an article solved it (the session then closes as `deflected`)
    solved_template: TemplateRef = "builtin:faq_solved"
    # where the guest goes when no article matches, or none solved it
    next: str

    @field_validator("question_from")
    @classmethod
    def _name(cls, value: str) -> str:
        if not re.match(METADATA_KEY_PATTERN, value):
            raise ValueError(
                f"{value!r} is not a metadata name: use the name a question stores, like "
                "Answers.Need"
            )
        return value

    def template_refs(self) -> dict[str, TemplateRef]:
        return {"solved_template": self.solved_template}

    def metadata_read(self) -> dict[str, list[str]]:
        return {"question_from": [self.question_from]}

    def metadata_written(self) -> list[str]:
        return [ARTICLE_ID, ARTICLE_TITLE, SUGGESTED]


def _typed(guest: GuestInput) -> str:
    """What the guest typed, lowercased, without apostrophes and punctuation."""
    text = (guest.answer or "").casefold().replace("'", "").replace("\u2019", "")
    return " ".join(re.sub(r"[^\w\s]", " ", text).split())


class FaqAction(Action[FaqStage]):
    name = "faq"
    settings = FaqStage

    async def enter(self, ctx: StageContext, stage: FaqStage) -> Outcome:
        question = ctx.session.metadata.get(stage.question_from)
        knowledge = ctx.config.knowledge_base(ctx.tenant.id)
        if question is None or not str(question).strip() or knowledge is None:
            return Goto(stage.next)
        matches = knowledge.search(
            str(question), limit=stage.max_results, min_score=stage.min_score,
            share=RELATED_SHARE,
        )
        if not matches:
            return Goto(stage.next)
        ctx.set_metadata(SUGGESTED, ",".join(m.article.id for m in matches))
        await ctx.send_card(self._card(ctx, stage, [m.article for m in matches]))
        return Wait()

    async def receive(self, ctx: StageContext, stage: FaqStage, guest: GuestInput) -> Outcome:
        shown = self._shown(ctx)
        if not shown:  # the knowledge base changed since the card was sent: search again
            return await self.enter(ctx, stage)
        typed = _typed(guest) if guest.verb is None else ""
        solved: Article | None = None
        if guest.verb == "solved":
            solved = next((a for a in shown if a.id == guest.choice), None)
        elif typed in SOLVED_WORDS:
            solved = shown[0]
        if solved is not None:
            ctx.set_metadata(ARTICLE_ID, solved.id)
            ctx.set_metadata(ARTICLE_TITLE, solved.title)
            if guest.invoke:
                ctx.replace_card = chosen_card(ctx.bind_text(stage.prompt), solved.title)
            card = ctx.bind(ctx.template(stage, "solved_template"))
            return Close(SessionState.DEFLECTED, card)
        if guest.verb == "more" or typed in MORE_WORDS:
            if guest.invoke:
                ctx.replace_card = chosen_card(ctx.bind_text(stage.prompt), "I still need help")
            return Goto(stage.next)
        await ctx.send_text(
            "Did one of these articles solve it? Press **This solved it** under the one that "
            "did, or **I still need help** (you can also type *solved* or *still need help*)."
        )
        await ctx.send_card(self._card(ctx, stage, shown))
        return Wait()

    def _shown(self, ctx: StageContext) -> list[Article]:
        knowledge = ctx.config.knowledge_base(ctx.tenant.id)
        ids = str(ctx.session.metadata.get(SUGGESTED) or "").split(",")
        found = [knowledge.article(i) for i in ids if i] if knowledge is not None else []
        return [a for a in found if a is not None]

    def _card(self, ctx: StageContext, stage: FaqStage, articles: list[Article]) -> dict:
        return faq_card(
            ctx.bind_text(stage.prompt),
            [(a.id, a.title, a.answer, a.link) for a in articles],
            session_id=ctx.session.id,
            stage_key=stage.key,
            use_execute=ctx.use_execute,
        )

    def check(self, stage: FaqStage, load: LoadCheck) -> list[str]:
        if not load.tenant.knowledge_base_files:
            return [
                f"tenant {load.tenant.id!r} has no `knowledge_base`: add one to the tenant, "
                "like `knowledge_base: kb/it.yaml`"
            ]
        return []


ACTION = FaqAction()
