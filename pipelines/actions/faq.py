"""`faq`: search the tenant's knowledge base for the guest's question and offer the answers.

The question is a metadata value (`question_from`, e.g. the answer to an earlier question).
When the search is sure enough that the best article answers (pipelines.search.abstention:
its confidence, a model of the evidence, reaches `min_score`), it and the next best that share
a word or come close in meaning (at most `max_results`) are shown on one card, each with "This
solved it"; under them, "I still need help". Typed "solved" / "yes" (the best article) and
"still need help" / "no" work too.

- Solved: the session closes as `deflected`, with `Faq.ArticleId` and `Faq.ArticleTitle`.
- Still need help: on to `next` (`Faq.Suggested` keeps the ids that were offered).
- Not sure enough (or there is no question): straight to `next`, no card.

Every answer is kept, to learn from use (pipelines.search.records): the question, the articles
shown with their scores, why the card was shown or withheld, and later what the guest pressed.

The index is built once per tenant when the config loads (`pipelines.knowledge`).
`KnowledgeBase.search` returns the whole `SearchResult` (normalised question, candidates with
their scores, the reason the card was shown or withheld), which is what a record of the answer
keeps.
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
from pipelines.knowledge import Article, KnowledgeBase, SearchResult
from pipelines.search.abstention import Abstention
from pipelines.search.records import (
    NEAREST,
    Evidence,
    FaqAnswer,
    OutOfScopeEvidence,
    record_name,
)
from pipelines.search.records import Outcome as Pressed
from storage.models import SessionState

ARTICLE_ID = "Faq.ArticleId"
ARTICLE_TITLE = "Faq.ArticleTitle"
SUGGESTED = "Faq.Suggested"
# when the question was searched: the answer's record keeps it when the guest presses later
ASKED_AT = "Faq.AskedAt"
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
    # how sure the search must be that the best article answers, 0 to 1 (below 1); 0 shows
    # the best article whatever the evidence; unset, the threshold chosen with the search's
    # confidence model on tests/faq_dev_set.yaml (pipelines.search.confidence, docs/faq.md)
    min_score: float | None = Field(default=None, ge=0)
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

    @field_validator("min_score")
    @classmethod
    def _confidence(cls, value: float | None) -> float | None:
        if value is not None and value >= 1:
            raise ValueError(
                f"{value:g} is not a confidence: `min_score` is how sure the search must be "
                f"that the best article answers, from 0 (always show) to below 1 (leave it out "
                "for the threshold chosen with the search's model); before issue 16's second "
                "round it counted words in common, so drop the old value to use the default"
            )
        return value

    def abstention(self) -> Abstention:
        return Abstention(min_confidence=self.min_score)

    def template_refs(self) -> dict[str, TemplateRef]:
        return {"solved_template": self.solved_template}

    def metadata_read(self) -> dict[str, list[str]]:
        return {"question_from": [self.question_from]}

    def metadata_written(self) -> list[str]:
        return [ARTICLE_ID, ARTICLE_TITLE, SUGGESTED, ASKED_AT]


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
        result = knowledge.search(
            str(question), limit=stage.max_results, abstention=stage.abstention(),
        )
        asked = ctx.now().isoformat(timespec="milliseconds")
        ctx.set_metadata(ASKED_AT, asked)
        ctx.keep(record_name(stage.key),
                 _record(ctx, stage, str(question), result, knowledge, asked).body())
        if not result.shown:
            return Goto(stage.next)
        ctx.set_metadata(SUGGESTED, ",".join(a.id for a in result.articles))
        await ctx.send_card(self._card(ctx, stage, result.articles))
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
            self._outcome(ctx, stage, shown, "solved", solved.id)
            ctx.set_metadata(ARTICLE_ID, solved.id)
            ctx.set_metadata(ARTICLE_TITLE, solved.title)
            if guest.invoke:
                ctx.replace_card = chosen_card(ctx.bind_text(stage.prompt), solved.title)
            card = ctx.bind(ctx.template(stage, "solved_template"))
            return Close(SessionState.DEFLECTED, card)
        if guest.verb == "more" or typed in MORE_WORDS:
            self._outcome(ctx, stage, shown, "more", None)
            if guest.invoke:
                ctx.replace_card = chosen_card(ctx.bind_text(stage.prompt), "I still need help")
            return Goto(stage.next)
        await ctx.send_text(
            "Did one of these articles solve it? Press **This solved it** under the one that "
            "did, or **I still need help** (you can also type *solved* or *still need help*)."
        )
        await ctx.send_card(self._card(ctx, stage, shown))
        return Wait()

    def _outcome(self, ctx: StageContext, stage: FaqStage, shown: list[Article],
                 outcome: Pressed, solved: str | None) -> None:
        """Replace the answer's record with one that says what the guest pressed (the search
        is run again for the scores: the same base gives the same ones)."""
        knowledge = ctx.config.knowledge_base(ctx.tenant.id)
        question = str(ctx.session.metadata.get(stage.question_from) or "")
        if knowledge is None or not question.strip():
            return
        result = knowledge.search(question, limit=stage.max_results,
                                  abstention=stage.abstention())
        asked = str(ctx.session.metadata.get(ASKED_AT) or ctx.now().isoformat())
        record = _record(ctx, stage, question, result, knowledge, asked, shown)
        ctx.keep(record_name(stage.key), record.model_copy(update={
            "outcome": outcome, "solved_article": solved,
            "outcome_at": ctx.now().isoformat(timespec="milliseconds"),
        }).body())

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


def _record(ctx: StageContext, stage: FaqStage, question: str, result: SearchResult,
            knowledge: KnowledgeBase, asked: str,
            shown: list[Article] | None = None) -> FaqAnswer:
    """The record of one answer: `shown` are the articles the card showed (default: the ones
    this search shows)."""
    candidates = {c.article_id: c for c in result.candidates}
    on_card = [m.article for m in result.shown] if shown is None else shown
    titles = {a.id: a.title for a in knowledge.articles}
    return FaqAnswer(
        at=asked, tenant_id=ctx.tenant.id, pipeline_id=ctx.pipeline.id, stage=stage.key,
        question=question, terms=list(result.terms), corrections=dict(result.corrections),
        reason=result.reason,
        confidence=None if result.confidence is None else round(result.confidence, 4),
        shown=[Evidence.of(candidates[a.id], a.title) if a.id in candidates
               else Evidence(id=a.id, title=a.title) for a in on_card],
        nearest=[Evidence.of(c, titles.get(c.article_id, c.article_id))
                 for c in result.candidates[:NEAREST]],
        out_of_scope=None if result.out_of_scope is None else OutOfScopeEvidence(
            question=knowledge.out_of_scope[result.out_of_scope.question],
            cosine=round(result.out_of_scope.cosine, 4),
            explained=round(result.out_of_scope.explained, 4)),
    )


ACTION = FaqAction()
