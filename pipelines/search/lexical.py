"""Word matching: BM25 (`bm25s`, Lucene's variant) over the articles' terms.

An article is indexed by its title and keywords, counted twice (they say what it is about), and
its answer. Scores are in **distinctive words**: a raw BM25 score divided by what one word found
in a single article adds to it (its IDF), so a threshold means the same in a base of 5 articles
and of 1,000.
"""

from __future__ import annotations

import logging
import math
from collections import Counter

import numpy as np

__all__ = ["Lexical"]

# an article's title and keywords count this many times as much as its answer
TITLE_WEIGHT = 2


class Lexical:
    def __init__(self, documents: list[list[str]]) -> None:
        import bm25s

        logging.getLogger("bm25s").setLevel(logging.WARNING)
        self.count = len(documents)
        self.retriever = bm25s.BM25()
        # bm25s cannot index a document without terms: give it one no question has
        self.retriever.index([d or ["\x00"] for d in documents], show_progress=False)
        self.vocabulary = frozenset(self.retriever.vocab_dict)
        # what a word found in one article only, once, adds to its score
        self.unit = math.log(1 + (self.count - 0.5) / 1.5)
        # in how many articles each term occurs
        self.document_frequency = Counter(term for d in documents for term in set(d))

    def scores(self, terms: list[str]) -> np.ndarray:
        """Each article's score for the question's terms, in distinctive words."""
        known = [t for t in terms if t in self.vocabulary]
        if not known:
            return np.zeros(self.count, dtype=np.float32)
        return np.asarray(self.retriever.get_scores(known), dtype=np.float32) / self.unit
