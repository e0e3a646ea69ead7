"""One knowledge base's search: words (BM25), meaning (sentence embeddings) and word-by-word
coverage (pipelines.search.coverage), fused, with the evidence for each candidate that the
confidence model reads (pipelines.search.confidence), and the question's nearest out-of-scope
question (pipelines.search.out_of_scope)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from pipelines.search import semantic, text
from pipelines.search.coverage import Coverage, Explained, WordCoverage
from pipelines.search.fusion import ranks, reciprocal_rank_fusion
from pipelines.search.lexical import TITLE_WEIGHT, Lexical
from pipelines.search.out_of_scope import Nearest, OutOfScope
from pipelines.search.typos import Speller

__all__ = ["Candidate", "Document", "SearchIndex"]

# candidates kept per search, for the card and for the record
CANDIDATES = 10
# a word in more than this share of the articles is common ("laptop" in an IT base)
COMMON_SHARE = 0.15
# the word-by-word coverage ranks the articles the other two rankings put in their first POOL
POOL = 20


@dataclass(frozen=True)
class Document:
    """What the index needs of an article."""

    id: str
    title: str
    keywords: tuple[str, ...]
    answer: str
    # other ways people ask for it (the article's `questions`)
    questions: tuple[str, ...] = ()

    def about(self) -> str:
        return " ".join([self.title, *self.keywords])

    def meaning_text(self) -> str:
        """What the embedding model reads: the title and keywords (the answer's how-to words
        blur what the article is about)."""
        return ". ".join([self.title, ", ".join(self.keywords)]) if self.keywords else self.title


@dataclass(frozen=True)
class Candidate:
    """One article's evidence for one question."""

    article_id: str
    words: float  # BM25, in distinctive words (pipelines.search.lexical)
    words_rank: int  # 1 = best; 0 = shares no word with the question
    meaning: float  # cosine similarity of the question's and the article's vectors
    meaning_rank: int
    fused: float  # reciprocal rank fusion of the two ranks
    # question terms found in the title or keywords, and in the answer only
    about_terms: tuple[str, ...] = ()
    answer_terms: tuple[str, ...] = ()
    # the only word in common is one most articles use: no evidence on its own
    one_common_word: bool = False
    # the cosine came from the article's example questions, not its title and keywords
    by_example: bool = False
    # how much of the question it explains word by word: the best candidate's only (the one
    # pipelines.search.abstention judges)
    coverage: Coverage | None = None


@dataclass(frozen=True)
class Analysis:
    """A question as the index understood it, and its best candidates, best first."""

    terms: tuple[str, ...]
    corrections: dict[str, str] = field(default_factory=dict)
    candidates: tuple[Candidate, ...] = ()
    # in how many articles each question term occurs (common words are weak evidence)
    document_frequency: dict[str, int] = field(default_factory=dict)
    articles: int = 0
    # the closest question the base is known not to answer (None: the base lists none)
    out_of_scope: Nearest | None = None


class SearchIndex:
    def __init__(self, documents: Sequence[Document], out_of_scope: Sequence[str] = ()) -> None:
        self.documents = list(documents)
        about = [text.terms(d.about()) for d in self.documents]
        answers = [text.terms(d.answer) for d in self.documents]
        asked = [text.terms(" ".join(d.questions)) for d in self.documents]
        self.about_terms = [frozenset(t) for t in about]
        self.answer_terms = [frozenset(a) | frozenset(q) for a, q in zip(answers, asked,
                                                                         strict=True)]
        self.lexical = Lexical([a * TITLE_WEIGHT + b + q
                                for a, b, q in zip(about, answers, asked, strict=True)])
        vocabulary: list[str] = []
        for d in self.documents:
            # not the example questions: they are people's words, typos included
            vocabulary.extend(text.surface_words(" ".join([d.about(), d.answer])))
        self.speller = Speller(vocabulary)
        self.vectors, self.embedded = semantic.vectors([d.meaning_text() for d in self.documents])
        # the centroid of each article's example questions (one row per article; zeros for an
        # article without any): one vector an article, however many examples it has
        examples = [q for d in self.documents for q in d.questions]
        vectors, embedded = semantic.vectors(examples)
        self.embedded += embedded
        self.example_vectors = np.zeros_like(self.vectors)
        start = 0
        for row, d in enumerate(self.documents):
            if d.questions:
                mean = vectors[start:start + len(d.questions)].mean(axis=0)
                self.example_vectors[row] = mean / max(float(np.linalg.norm(mean)), 1e-9)
                start += len(d.questions)
        self.has_examples = np.asarray([bool(d.questions) for d in self.documents])
        self.coverage = WordCoverage([(d.title, *d.keywords, d.answer, *d.questions)
                                      for d in self.documents])
        self.embedded += self.coverage.embedded
        self.out_of_scope = OutOfScope(out_of_scope)
        self.embedded += self.out_of_scope.embedded

    def meaning(self, query: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each article's cosine with the question: the closer of its title and keywords and
        the centroid of its example questions; and whether the examples were the closer."""
        about = self.vectors @ query
        examples = np.where(self.has_examples, self.example_vectors @ query, -1.0)
        return np.maximum(about, examples), examples > about

    def _coverage(self, explained: Explained, words: list[str], article: int) -> Coverage:
        found = explained.of(article)
        if found is None:  # fused first from outside the pool (rare): explain it alone
            found = self.coverage.explain(words, [article]).of(article)
        assert found is not None
        return found

    def analyse(self, question: str) -> Analysis:
        words, corrections = self.speller.correct(text.words(question))
        if not words:  # "?", an emoji: nothing to search by
            return Analysis(terms=(), articles=len(self.documents))
        terms = text.terms(words)
        word_scores = self.lexical.scores(terms)
        query = semantic.encoder().embed([" ".join(words)])[0]
        meaning, by_example = self.meaning(query)
        word_ranks = ranks(word_scores, floor=0.0)
        meaning_ranks = ranks(meaning)
        pool = np.flatnonzero(((word_ranks > 0) & (word_ranks <= POOL)) | (meaning_ranks <= POOL))
        explained = self.coverage.explain(words, pool)
        coverage_ranks = ranks(explained.ranking(), floor=0.0)
        fused = reciprocal_rank_fusion(word_ranks, meaning_ranks, coverage_ranks)
        # ties (an article only one ranking knows, at the same rank) go to the closer meaning
        best = np.lexsort((-meaning, -fused))[:CANDIDATES]
        question_terms = set(terms)
        common = {t for t in question_terms
                  if self.lexical.document_frequency.get(t, 0) > COMMON_SHARE * len(self.documents)}
        candidates = tuple(
            Candidate(
                article_id=self.documents[i].id,
                words=float(word_scores[i]),
                words_rank=int(word_ranks[i]),
                meaning=float(meaning[i]),
                meaning_rank=int(meaning_ranks[i]),
                fused=float(fused[i]),
                about_terms=tuple(sorted(question_terms & self.about_terms[i])),
                answer_terms=tuple(sorted((question_terms & self.answer_terms[i])
                                          - self.about_terms[i])),
                one_common_word=_one_common(question_terms & (self.about_terms[i]
                                                              | self.answer_terms[i]), common),
                by_example=bool(by_example[i]),
                coverage=self._coverage(explained, words, int(i)) if rank == 0 else None,
            )
            for rank, i in enumerate(best)
        )
        return Analysis(
            terms=tuple(terms),
            corrections=corrections,
            candidates=candidates,
            document_frequency={t: self.lexical.document_frequency.get(t, 0) for t in terms},
            articles=len(self.documents),
            out_of_scope=self.out_of_scope.nearest(query, words),
        )


def _one_common(matched: set[str], common: set[str]) -> bool:
    return len(matched) == 1 and matched <= common
