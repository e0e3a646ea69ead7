"""How much of a question an article explains, word by word.

A question about the car park shares "full" with the article about a full mailbox, and its
sentence vector is not far from it either; what gives it away is "car" and "park", which nothing
in that article is about. Each content word of the question (pipelines.search.text.content_words)
is explained by the article's closest word: 1 when the article has the word (same stem), else
the cosine of the two words' vectors (WordLlama, as pipelines.search.semantic: a word's vector
is its tokens' mean). "bullied" is explained by "harassment"'s article at 0.84, "coffee" by the
printer's at 0.18. The abstention model (pipelines.search.abstention) reads the mean, the least
explained word and the share explained at `EXPLAINED` or more.

The article's words are its title, keywords, answer and example questions. Each distinct word
of the base is embedded once, when the index is built; a search gathers one article's rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pipelines.search import semantic, text

__all__ = ["EXPLAINED", "Coverage", "WordCoverage"]

# a word this close to one of the article's words counts as explained
EXPLAINED = 0.5


@dataclass(frozen=True)
class Coverage:
    """How well one article explains one question's content words."""

    mean: float = 0.0
    least: float = 0.0
    explained: float = 0.0  # share of the words explained at EXPLAINED or more
    words: int = 0  # the question's content words


class WordCoverage:
    def __init__(self, documents: Sequence[tuple[str, ...]]) -> None:
        """`documents`: each article's texts (title, keywords, answer, example questions)."""
        stem = text.stemmer().stemWord
        per_article = [sorted(set(text.content_words(text.words(" ".join(d)))))
                       for d in documents]
        vocabulary = sorted({w for words in per_article for w in words})
        position = {w: i for i, w in enumerate(vocabulary)}
        self.vectors, self.embedded = semantic.vectors(vocabulary) if vocabulary else (
            np.zeros((0, 1), dtype=np.float32), 0)
        self.rows = [np.asarray([position[w] for w in words], dtype=np.int64)
                     for words in per_article]
        self.stems = [frozenset(stem(w) for w in words) for words in per_article]

    def of(self, question_words: list[str], article: int,
           vectors: np.ndarray | None = None) -> Coverage:
        """How well article number `article` explains `question_words` (already corrected);
        `vectors` are the content words' vectors when the caller has them."""
        words = text.content_words(question_words)
        if not words:
            return Coverage()
        if vectors is None:
            vectors = semantic.encoder().embed(words)
        stem = text.stemmer().stemWord
        rows = self.rows[article]
        closest = ((vectors @ self.vectors[rows].T).max(axis=1) if rows.size
                   else np.zeros(len(words), dtype=np.float32))
        exact = np.asarray([stem(w) in self.stems[article] for w in words])
        scores = np.where(exact, 1.0, closest)
        return Coverage(mean=float(scores.mean()), least=float(scores.min()),
                        explained=float((scores >= EXPLAINED).mean()), words=len(words))
