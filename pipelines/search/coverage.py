"""How much of a question each article explains, word by word: a third ranking, and evidence
for staying quiet.

A question about the car park shares "full" with the article about a full mailbox, and its
sentence vector is not far from it either; what gives it away is "car" and "park", which nothing
in that article is about. And "I'm being bullied by my team lead" shares no word with the
harassment article, while "bullied" sits close to "harassment". Each content word of the
question (pipelines.search.text.content_words) is explained by an article's closest word: 1
when the article has the word (same stem), else the cosine of the two words' vectors
(WordLlama, as pipelines.search.semantic: a word's vector is its tokens' mean). A sentence's
mean vector blurs one telling word among five; word by word it stands out.

- The **ranking**: each article's mean over the question's words, each weighted by its
  rarity in English (pipelines.search.english): "projector" says more than "work".
- The **evidence** for the best candidate (`Coverage`, read by pipelines.search.confidence):
  the plain mean, the least explained word, and the share explained at `EXPLAINED` or more.

An article's words are its title, keywords, answer and example questions. Each distinct word of
the base is embedded once, when the index is built. A search explains the question by the
articles the other two rankings put in their first `POOL` (pipelines.search.index): its cost
stays the same in a base of 58 articles or of 1,000.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pipelines.search import semantic, text
from pipelines.search.english import rarity

__all__ = ["EXPLAINED", "Coverage", "Explained", "WordCoverage"]

# a word this close to one of the article's words counts as explained
EXPLAINED = 0.5
# cosines against the whole vocabulary when it has at most this many words per pool word
WHOLE_VOCABULARY = 4


@dataclass(frozen=True)
class Coverage:
    """How well one article explains one question's content words."""

    mean: float = 0.0
    least: float = 0.0
    explained: float = 0.0  # share of the words explained at EXPLAINED or more
    words: int = 0  # the question's content words


@dataclass(frozen=True)
class Explained:
    """One question against some articles (`articles`, indices into the base): per content word
    (rows) and article (columns), how well the article explains the word; and the words'
    rarity."""

    scores: np.ndarray
    rarity: np.ndarray
    articles: np.ndarray
    total: int  # articles in the base

    def ranking(self) -> np.ndarray:
        """Each article's rarity-weighted mean; zero for the articles not explained here, and
        for all without a content word."""
        out = np.zeros(self.total, dtype=np.float32)
        if len(self.rarity) and len(self.articles):
            out[self.articles] = (self.rarity @ self.scores) / float(self.rarity.sum())
        return out

    def of(self, article: int) -> Coverage | None:
        """The evidence for one article (None when it is not among `articles`)."""
        if not len(self.rarity):
            return Coverage()
        where = np.flatnonzero(self.articles == article)
        if not where.size:
            return None
        column = self.scores[:, int(where[0])]
        return Coverage(mean=float(column.mean()), least=float(column.min()),
                        explained=float((column >= EXPLAINED).mean()), words=len(column))


class WordCoverage:
    def __init__(self, documents: Sequence[tuple[str, ...]]) -> None:
        """`documents`: each article's texts (title, keywords, answer, example questions)."""
        stem = text.stemmer().stemWord
        per_article = [sorted(set(text.content_words(text.words(" ".join(d)))))
                       for d in documents]
        vocabulary = sorted({w for words in per_article for w in words})
        position = {w: i for i, w in enumerate(vocabulary)}
        self.count = len(per_article)
        self.vectors, self.embedded = (semantic.vectors(vocabulary) if vocabulary
                                       else (np.zeros((0, 1), dtype=np.float32), 0))
        self.rows = [np.asarray([position[w] for w in words], dtype=np.intp)
                     for words in per_article]
        self.stems = [frozenset(stem(w) for w in words) for words in per_article]

    def explain(self, question_words: list[str], articles: Sequence[int]) -> Explained:
        """How well each of `articles` explains each content word of `question_words`
        (corrected). The cost grows with those articles' words, not with the base."""
        words = text.content_words(question_words)
        pool = np.asarray(articles, dtype=np.intp)
        scores = np.zeros((len(words), len(pool)), dtype=np.float32)
        if not words:
            return Explained(scores, np.zeros(0, dtype=np.float32), pool, self.count)
        filled = [col for col, a in enumerate(pool) if self.rows[a].size]
        if filled:
            flat = np.concatenate([self.rows[pool[col]] for col in filled])
            lengths = [self.rows[pool[col]].size for col in filled]
            starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.intp)
            scores[:, filled] = np.maximum.reduceat(
                self._cosines(flat, semantic.encoder().embed(words)), starts, axis=0).T
        stem = text.stemmer().stemWord
        stems = [stem(w) for w in words]
        for col, a in enumerate(pool):
            known = self.stems[a]
            for row, s in enumerate(stems):
                if s in known:
                    scores[row, col] = 1.0
        return Explained(scores, np.asarray([rarity(w) for w in words], dtype=np.float32),
                         pool, self.count)

    def _cosines(self, flat: np.ndarray, question: np.ndarray) -> np.ndarray:
        """The cosine of each base word in `flat` (rows) with each question word (columns).
        Against the whole vocabulary when it is small next to the pool's words (one product,
        then a cheap gather of small rows); else against the pool's distinct words only
        (copying a few rows of 256 floats beats multiplying thousands)."""
        if len(self.vectors) <= WHOLE_VOCABULARY * len(flat):
            return (self.vectors @ question.T)[flat]
        distinct, where = np.unique(flat, return_inverse=True)
        return (self.vectors[distinct] @ question.T)[where]
