"""Questions the knowledge base is known not to answer, as evidence for staying quiet.

A help desk hears the same needs that no article covers again and again: the car park, the
canteen, booking travel, a desk phone. Their questions share words and meaning with some
article ("the car park is full" with "Your mailbox is full"), which is all the other evidence
sees. An admin who reads `switchboard-admin faq report` can list them in a knowledge-base file's
`out_of_scope` (the "None" intent of intent classifiers); a question close to one of them is
less likely to be answered by the best article, and the confidence model
(pipelines.search.confidence) weighs that.

The evidence for a question is its nearest out-of-scope question by sentence cosine
(pipelines.search.semantic), and how well that question explains it word by word
(pipelines.search.coverage, rarity-weighted): "can I park my car at the office" is close to
"the car park is always full" in both; "my mailbox is full" shares "full" and little else.
The questions are embedded once, when the index is built; a search costs one product with
their vectors and one word-by-word comparison, with the nearest only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pipelines.search import semantic, text
from pipelines.search.coverage import WordCoverage

__all__ = ["Nearest", "OutOfScope"]


@dataclass(frozen=True)
class Nearest:
    """A question's nearest out-of-scope question."""

    question: int  # its position in the knowledge base's `out_of_scope`
    cosine: float
    explained: float  # how well it explains the question's content words (0 to 1)


class OutOfScope:
    def __init__(self, questions: Sequence[str]) -> None:
        self.questions = tuple(questions)
        # the same words as a guest's question is embedded with (pipelines.search.index)
        self.vectors, self.embedded = semantic.vectors(
            [" ".join(text.words(q)) for q in self.questions])
        self.coverage = WordCoverage([(q,) for q in self.questions])
        self.embedded += self.coverage.embedded

    def nearest(self, query: np.ndarray, words: list[str]) -> Nearest | None:
        """The nearest to a question (its unit vector and its corrected words); None when
        there are no out-of-scope questions."""
        if not self.questions:
            return None
        cosines = self.vectors @ query
        best = int(np.argmax(cosines))
        explained = float(self.coverage.explain(words, [best]).ranking()[best])
        return Nearest(question=best, cosine=float(cosines[best]), explained=explained)
