"""A tenant's knowledge base: FAQ articles, checked when the config loads, and their search.

Articles live in YAML or JSON files next to the config (`knowledge_base: kb/it.yaml`, or a list
of files), each `{articles: [{id, title, answer, keywords, questions, link}, ...]}`; a file may
also list `out_of_scope`: questions people asked that no article answers (evidence for staying
quiet: pipelines.search.out_of_scope). The loader reads and checks them and builds each
tenant's search index once, there (`pipelines.search`: words and meaning, fused, with
abstention); a guest's turn only analyses the question.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator

from pipelines.problems import explain
from pipelines.search import confidence
from pipelines.search.abstention import Abstention, Reason
from pipelines.search.index import Candidate, Document, SearchIndex
from pipelines.search.out_of_scope import Nearest

__all__ = [
    "Article",
    "KnowledgeBase",
    "KnowledgeFile",
    "Match",
    "SearchResult",
    "parse_knowledge_file",
]

MAX_ARTICLES = 1000
MAX_OUT_OF_SCOPE = 5000
MAX_QUESTION = 300
# like a stage key: letters, digits, - _ .
ARTICLE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


class Article(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=ARTICLE_ID_PATTERN)
    title: str = Field(min_length=1, max_length=200)
    # markdown, shown in a TextBlock; at most 3 fit a Teams card, so keep it short
    answer: str = Field(min_length=1, max_length=2000)
    keywords: list[str] = Field(default_factory=list, max_length=50)
    # how people ask for it, in their own words (from `switchboard-admin faq report`): the
    # search compares a question with these too
    questions: list[str] = Field(default_factory=list, max_length=100)
    link: str | None = Field(default=None, pattern=r"^https?://\S+$", max_length=1000)

    @field_validator("keywords")
    @classmethod
    def _words(cls, value: list[str]) -> list[str]:
        for word in value:
            if not word.strip() or len(word) > 100:
                raise ValueError("each keyword is a word or short phrase (1 to 100 characters)")
        return value

    @field_validator("questions")
    @classmethod
    def _questions(cls, value: list[str]) -> list[str]:
        return _sentences(value)

    def document(self) -> Document:
        return Document(self.id, self.title, tuple(self.keywords), self.answer,
                        tuple(self.questions))


@dataclass(frozen=True)
class Match:
    """An article on the card, with the evidence that put it there."""

    article: Article
    evidence: Candidate


@dataclass(frozen=True)
class SearchResult:
    """One search, whole: what the card shows and why, and what a record of it needs (the
    question's normalised terms and corrections, the candidates with their scores)."""

    terms: tuple[str, ...]
    corrections: dict[str, str]
    candidates: tuple[Candidate, ...]
    shown: tuple[Match, ...]
    # why the card was shown (`confident`, `always`) or withheld (`no-question`, `weak`):
    # pipelines.search.abstention
    reason: Reason
    thresholds: Abstention = field(default_factory=Abstention)
    # how sure the search is that the best article answers (pipelines.search.confidence);
    # None when nothing was judged (no question, or `min_score: 0`)
    confidence: float | None = None
    # the question's nearest out-of-scope question (None: the base lists none)
    out_of_scope: Nearest | None = None

    @property
    def articles(self) -> list[Article]:
        return [m.article for m in self.shown]


RECENT_SEARCHES = 512


class KnowledgeBase(BaseModel):
    """A tenant's articles, with the search index built once (by the loader)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    articles: list[Article] = Field(min_length=1, max_length=MAX_ARTICLES)
    # questions people asked that no article answers (pipelines.search.out_of_scope)
    out_of_scope: list[str] = Field(default_factory=list, max_length=MAX_OUT_OF_SCOPE)
    _index: SearchIndex | None = PrivateAttr(default=None)
    _by_id: dict[str, Article] = PrivateAttr(default_factory=dict)
    # the latest analyses by question: the guest's answer to a card searches its question
    # again (for the record of what they pressed), and a question is often asked twice
    _recent: OrderedDict[str, Any] = PrivateAttr(default_factory=OrderedDict)

    @field_validator("out_of_scope")
    @classmethod
    def _out_of_scope(cls, value: list[str]) -> list[str]:
        return _sentences(value)

    def build(self) -> KnowledgeBase:
        """Index the articles (pipelines.search.semantic.ModelUnavailable when the embedding
        model's package is missing or broken)."""
        # both read now: a damaged install fails at start, not in a turn
        confidence.model(False)
        confidence.model(True)
        self._index = SearchIndex([a.document() for a in self.articles], self.out_of_scope)
        self._by_id = {a.id: a for a in self.articles}
        return self

    def digest(self) -> str:
        """sha256 of the articles, to tell two versions of the base apart."""
        text = json.dumps([a.model_dump() for a in self.articles], sort_keys=True)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def article(self, article_id: str) -> Article | None:
        if self._by_id:
            return self._by_id.get(article_id)
        return next((a for a in self.articles if a.id == article_id), None)

    def search(self, question: str, *, limit: int = 3,
               abstention: Abstention | None = None) -> SearchResult:
        """The articles that answer `question`, best first (at most `limit`), or none when the
        evidence is not real (pipelines.search.abstention)."""
        if self._index is None:
            self.build()
        assert self._index is not None
        rule = abstention or Abstention()
        analysis = self._recent.get(question)
        if analysis is None:
            analysis = self._index.analyse(question)
            self._recent[question] = analysis
            while len(self._recent) > RECENT_SEARCHES:
                self._recent.popitem(last=False)
        else:
            self._recent.move_to_end(question)
        chosen, reason, confidence = rule.select(analysis.candidates, limit,
                                                 analysis.out_of_scope)
        return SearchResult(
            terms=analysis.terms,
            corrections=analysis.corrections,
            candidates=analysis.candidates,
            shown=tuple(Match(self._by_id[c.article_id], c) for c in chosen),
            reason=reason,
            thresholds=rule,
            confidence=confidence,
            out_of_scope=analysis.out_of_scope,
        )


SENTENCE = f"each question is a sentence (1 to {MAX_QUESTION} characters)"


def _is_sentence(question: object) -> bool:
    return isinstance(question, str) and bool(question.strip()) and len(question) <= MAX_QUESTION


def _sentences(value: list[str]) -> list[str]:
    if not all(_is_sentence(q) for q in value):
        raise ValueError(SENTENCE)
    return value


@dataclass(frozen=True)
class KnowledgeFile:
    """What one knowledge-base file holds."""

    articles: list[Article]
    out_of_scope: list[str]


SHAPE = ("the file must be a mapping with `articles:`, a list of {id, title, answer}, and/or "
         "`out_of_scope:`, a list of questions no article answers")


def parse_knowledge_file(raw: Any) -> tuple[KnowledgeFile, list[str]]:
    """What one knowledge-base file holds, and what is wrong with it (for an admin)."""
    from pydantic import ValidationError

    if not isinstance(raw, dict) or not ({"articles", "out_of_scope"} & set(raw)):
        return KnowledgeFile([], []), [SHAPE]
    unknown = sorted(str(k) for k in raw if k not in ("articles", "out_of_scope"))
    problems = [f"unknown setting `{k}`: the file holds only `articles` and `out_of_scope`"
                for k in unknown]
    out_of_scope, out_problems = _out_of_scope(raw.get("out_of_scope", []))
    problems += out_problems
    if "articles" not in raw:
        return KnowledgeFile([], out_of_scope), problems
    if not isinstance(raw["articles"], list):
        return KnowledgeFile([], out_of_scope), [*problems, SHAPE]
    articles: list[Article] = []
    for index, item in enumerate(raw["articles"]):
        where = f"articles[{index}]"
        if isinstance(item, dict) and isinstance(item.get("id"), str):
            where += f" (id {item['id']!r})"
        if not isinstance(item, dict):
            problems.append(f"{where} must be a mapping with id, title, answer")
            continue
        try:
            articles.append(Article(**item))
        except (ValidationError, TypeError) as exc:
            problems.extend(f"{where}: {message}" for message in _messages(exc))
    if not raw["articles"]:
        problems.append("`articles` is empty: add at least one article, or leave `articles` "
                        "out of a file of `out_of_scope` questions")
    return KnowledgeFile(articles, out_of_scope), problems


def _out_of_scope(value: Any) -> tuple[list[str], list[str]]:
    if not isinstance(value, list):
        return [], ["`out_of_scope` must be a list of questions no article answers"]
    if len(value) > MAX_OUT_OF_SCOPE:
        return [], [f"`out_of_scope` has {len(value)} questions: at most {MAX_OUT_OF_SCOPE}"]
    kept, problems = [], []
    for index, question in enumerate(value):
        if _is_sentence(question):
            kept.append(question)
        else:
            problems.append(f"out_of_scope[{index}]: {SENTENCE}")
    return kept, problems


def _messages(exc: Exception) -> list[str]:
    return explain(
        exc,
        unknown="unknown setting: an article has id, title, answer, keywords, questions, link",
        patterns={
            "link": "must be an http:// or https:// address",
            "id": "letters, digits, - _ . only (at most 64)",
        },
    )
