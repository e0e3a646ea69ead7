"""A tenant's knowledge base: FAQ articles, and a BM25 index to find them from a guest's words.

Articles live in YAML or JSON files next to the config (`knowledge_base: kb/it.yaml`, or a list
of files), each `{articles: [{id, title, answer, keywords, link}, ...]}`. The loader reads and
checks them when the config loads and builds each tenant's index once, there; a guest's turn
only tokenizes the question and scores it.

Ranking is `bm25s` (BM25, maintained, numpy only) over the title and keywords (counted twice:
they are what an article is about) and the answer. Text is normalised the same way on both
sides: lowercased, split into words of two letters or more, English stopwords and a few words
every help-desk question has ("help", "please", "need") dropped, then Snowball-stemmed
(PyStemmer), so "printing", "printer" and "prints" meet.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import math
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator

from pipelines.problems import explain

__all__ = [
    "Article",
    "HitRate",
    "KnowledgeBase",
    "Match",
    "hit_rate",
    "normalise",
    "parse_articles",
]

# words that say nothing about *what* the guest needs, on top of the English stopwords
HELP_DESK_STOPWORDS = (
    "help", "helpdesk", "please", "pls", "plz", "thanks", "thank", "hi", "hello", "hey",
    "need", "want", "like", "would", "could", "can", "get", "got", "know", "tell", "anyone",
    "someone", "question", "issue", "problem", "also", "still", "today", "im", "ive", "cant",
    "dont", "doesnt", "isnt", "wont", "didnt",
)
# an article's title and keywords count this many times as much as its answer
TITLE_WEIGHT = 2
MAX_ARTICLES = 1000
# like a stage key: letters, digits, - _ .
ARTICLE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


class Article(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=ARTICLE_ID_PATTERN)
    title: str = Field(min_length=1, max_length=200)
    # markdown, shown in a TextBlock; at most 3 fit a Teams card, so keep it short
    answer: str = Field(min_length=1, max_length=2000)
    keywords: list[str] = Field(default_factory=list, max_length=50)
    link: str | None = Field(default=None, pattern=r"^https?://\S+$", max_length=1000)

    @field_validator("keywords")
    @classmethod
    def _words(cls, value: list[str]) -> list[str]:
        for word in value:
            if not word.strip() or len(word) > 100:
                raise ValueError("each keyword is a word or short phrase (1 to 100 characters)")
        return value

    def text(self) -> str:
        """What the index sees."""
        about = " ".join([self.title, *self.keywords])
        return " ".join([about] * TITLE_WEIGHT + [self.answer])


@dataclass(frozen=True)
class Match:
    article: Article
    score: float


class _Index:
    """The bm25s retriever over the articles' text, normalised by `_tokenize`."""

    def __init__(self, articles: list[Article]) -> None:
        import bm25s

        logging.getLogger("bm25s").setLevel(logging.WARNING)
        self.retriever = bm25s.BM25()
        self.retriever.index(_tokenize([a.text() for a in articles]), show_progress=False)

    def scores(self, question: str) -> list[float]:
        """Each article's BM25 score, in units of one distinctive word (see `unit`)."""
        count = self.retriever.scores["num_docs"]
        [tokens] = _tokenize([question])
        # bm25s turns a text without a word into [""], which its vocabulary has but its index
        # does not: scoring it raises ValueError (a guest who typed "?" or an emoji)
        known = [t for t in tokens if t and t in self.retriever.vocab_dict]
        if not known:
            return [0.0] * count
        return [float(s) / self.unit for s in self.retriever.get_scores(known)]

    @functools.cached_property
    def unit(self) -> float:
        """What a word found in one article only, once, adds to its score (BM25's idf for it,
        Lucene's formula as bm25s uses): raw scores grow with the log of the number of
        articles, so a threshold in these units means the same in a small and a large base."""
        count = self.retriever.scores["num_docs"]
        return math.log(1 + (count - 0.5) / 1.5)


@functools.cache
def _stemmer() -> Any:
    """Snowball English (PyStemmer), as bm25s recommends; built once."""
    import Stemmer

    return Stemmer.Stemmer("english")


@functools.cache
def _stopwords() -> list[str]:
    from bm25s.stopwords import STOPWORDS_EN_PLUS

    # apostrophes are dropped before tokenizing ("aren't" -> "arent"): the list too
    english = {w.replace("'", "") for w in STOPWORDS_EN_PLUS}
    return sorted(english | set(HELP_DESK_STOPWORDS))


def _tokenize(texts: list[str]) -> list[list[str]]:
    import bm25s

    # apostrophes go first: "can't" -> "cant" (a stopword), "employee's" -> "employees"
    cleaned = [t.replace("'", "").replace("\u2019", "") for t in texts]
    return bm25s.tokenize(
        cleaned,
        lower=True,
        stopwords=_stopwords(),
        stemmer=_stemmer(),
        return_ids=False,
        show_progress=False,
        allow_empty=False,
    )


def normalise(text: str) -> list[str]:
    """The terms a text is indexed or searched by (for tests and tuning)."""
    return _tokenize([text])[0]


class KnowledgeBase(BaseModel):
    """A tenant's articles, with the index built once (by the loader)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    articles: list[Article] = Field(min_length=1, max_length=MAX_ARTICLES)
    _index: _Index | None = PrivateAttr(default=None)

    def build(self) -> KnowledgeBase:
        self._index = _Index(self.articles)
        return self

    def digest(self) -> str:
        """sha256 of the articles, to tell two versions of the base apart."""
        text = json.dumps([a.model_dump() for a in self.articles], sort_keys=True)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def article(self, article_id: str) -> Article | None:
        return next((a for a in self.articles if a.id == article_id), None)

    def search(
        self, question: str, *, limit: int = 3, min_score: float = 0.0, share: float = 0.0
    ) -> list[Match]:
        """The best articles for `question`, best first: none unless the best scores at least
        `min_score`; then at most `limit`, each scoring at least `share` of the best (an
        article that shares no word with the question never matches)."""
        if self._index is None:
            self.build()
        assert self._index is not None
        scored = sorted(
            (
                Match(article, score)
                for article, score in zip(
                    self.articles, self._index.scores(question), strict=True
                )
                if score > 0
            ),
            key=lambda m: -m.score,
        )
        if not scored or scored[0].score < min_score:
            return []
        best = scored[0].score
        return [m for m in scored if m.score >= share * best][:limit]


def parse_articles(raw: Any) -> tuple[list[Article], list[str]]:
    """The articles of one knowledge-base file, and what is wrong with it (for an admin)."""
    from pydantic import ValidationError

    if not isinstance(raw, dict) or not isinstance(raw.get("articles"), list):
        return [], ["the file must be a mapping with `articles:`, a list of {id, title, answer}"]
    unknown = sorted(str(k) for k in raw if k != "articles")
    problems = [f"unknown setting `{k}`: the file holds only `articles`" for k in unknown]
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
        problems.append("`articles` is empty: add at least one article")
    return articles, problems


def _messages(exc: Exception) -> list[str]:
    return explain(
        exc,
        unknown="unknown setting: an article has id, title, answer, keywords, link",
        patterns={
            "link": "must be an http:// or https:// address",
            "id": "letters, digits, - _ . only (at most 64)",
        },
    )


@dataclass(frozen=True)
class HitRate:
    """How often the right article comes first, or among the first three, for labelled
    questions; and how often something is shown for questions the base cannot answer."""

    questions: int
    top1: float
    top3: float
    shown_per_question: float
    unanswerable: int
    unanswerable_shown: int
    misses: tuple[tuple[str, str, tuple[str, ...]], ...]


def hit_rate(
    knowledge: KnowledgeBase,
    labelled: dict[str, str],
    unanswerable: tuple[str, ...] | list[str] = (),
    *,
    limit: int = 3,
    min_score: float = 0.0,
    share: float = 0.0,
) -> HitRate:
    """Search every labelled question (question -> expected article id) as `faq` would."""
    top1 = top3 = shown = 0
    misses = []
    for question, expected in labelled.items():
        found = tuple(
            m.article.id
            for m in knowledge.search(question, limit=limit, min_score=min_score, share=share)
        )
        shown += len(found)
        top1 += found[:1] == (expected,)
        top3 += expected in found[:3]
        if found[:1] != (expected,):
            misses.append((question, expected, found))
    count = max(len(labelled), 1)
    return HitRate(
        questions=len(labelled),
        top1=top1 / count,
        top3=top3 / count,
        shown_per_question=shown / count,
        unanswerable=len(unanswerable),
        unanswerable_shown=sum(
            bool(knowledge.search(q, limit=limit, min_score=min_score, share=share))
            for q in unanswerable
        ),
        misses=tuple(misses),
    )
