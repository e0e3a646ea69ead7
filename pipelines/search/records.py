"""What the FAQ keeps of each answer, to learn from use: the question, the articles shown with
the search's evidence, why the card was shown or withheld, and what the guest pressed.

The `faq` stage keeps one record per stage it ran in a session (`StageContext.keep`, name
`faq:<stage>`), written with the session and kept as long as its transcript; pressing a button
replaces it with the outcome. `switchboard-admin faq report` reads them back
(`SessionStore.records(tenant, TYPE)`). The typed question lives only here and in the session:
it is never logged.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

from pipelines.search.index import Candidate

__all__ = ["TYPE", "Evidence", "FaqAnswer", "OutOfScopeEvidence", "Outcome", "record_name"]

TYPE = "faq_answer"
# the best candidates kept on a record whatever was shown: what came close to a question
# that got no card
NEAREST = 3

# none: the card was not answered (or there was no card); solved: "This solved it";
# more: "I still need help"
Outcome = Literal["none", "solved", "more"]


def record_name(stage_key: str) -> str:
    return f"faq:{stage_key}"


class _Body(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore",
                              frozen=True)


class Evidence(_Body):
    """One article and the search's scores for it (pipelines.search.index.Candidate)."""

    id: str
    title: str
    # None: the article is no longer among the search's candidates (the base changed)
    words: float | None = None
    words_rank: int | None = None
    meaning: float | None = None
    meaning_rank: int | None = None
    fused: float | None = None
    by_example: bool = False

    @classmethod
    def of(cls, candidate: Candidate, title: str) -> Evidence:
        return cls(id=candidate.article_id, title=title, words=round(candidate.words, 4),
                   words_rank=candidate.words_rank, meaning=round(candidate.meaning, 4),
                   meaning_rank=candidate.meaning_rank, fused=round(candidate.fused, 6),
                   by_example=candidate.by_example)


class OutOfScopeEvidence(_Body):
    """The question's nearest out-of-scope question (pipelines.search.out_of_scope)."""

    question: str
    cosine: float
    explained: float


class FaqAnswer(_Body):
    """One FAQ answer, as a document body (camelCase, `type` and `at` as the store wants)."""

    type: Literal["faq_answer"] = TYPE
    at: str  # when the question was searched (ISO, UTC)
    tenant_id: str
    session_id: str | None = None  # set by the store when it is read back
    pipeline_id: str
    stage: str
    question: str
    terms: list[str]
    corrections: dict[str, str]
    # why the card was shown (confident, always; before the confidence model: words,
    # agreement, meaning) or withheld (weak, no-question): pipelines.search.abstention
    reason: str
    # how sure the search was that the best article answers (0 to 1); none in older records
    confidence: float | None = None
    shown: list[Evidence]
    nearest: list[Evidence]
    # the closest question the base lists as out of scope (none: it lists none, or an older
    # record)
    out_of_scope: OutOfScopeEvidence | None = None
    outcome: Outcome = "none"
    solved_article: str | None = None
    outcome_at: str | None = None

    def body(self) -> dict[str, object]:
        return self.model_dump(mode="json", by_alias=True, exclude={"session_id"})

    @property
    def withheld(self) -> bool:
        return not self.shown
