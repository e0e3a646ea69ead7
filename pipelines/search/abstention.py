"""Knowing when to stay quiet: a card only when the evidence is real.

The best fused candidate is shown when the search is sure enough that it answers the question:
its confidence (pipelines.search.confidence, a model of all the evidence at once: words in
common, meaning, how much of the question the article explains word by word, the rankings'
agreement, the nearest out-of-scope question) reaches `min_confidence`. Otherwise nothing is
shown. `min_confidence` 0 turns abstention off: the best candidate is always shown.

The default (None) is the model's own threshold, chosen with it on the development set
(bench/faq_fit_confidence.py): the threshold at which top-3 less the share of unanswerable
questions carded is highest, cross-validated and split by author together (a withheld answer and
a wrong card cost the same); docs/faq.md has the figures. Once the best is shown, the card
carries the next best fused candidates too (at most the stage's `max_results`) that share a
word with the question or come close in meaning (`related_meaning`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pipelines.search.confidence import evidence, meaning, model
from pipelines.search.index import Candidate
from pipelines.search.out_of_scope import Nearest

__all__ = ["Abstention", "Reason"]

Reason = Literal[
    "confident", "always",  # shown
    "no-question", "weak",  # withheld
]

@dataclass(frozen=True)
class Abstention:
    # None: the confidence model's own threshold; 0: always show the best
    min_confidence: float | None = None
    # another article joins the card when it shares a word or comes this close in meaning
    related_meaning: float = 0.35

    def confidence(self, candidates: tuple[Candidate, ...],
                   out_of_scope: Nearest | None = None) -> float:
        """How sure the search is that candidates[0] answers the question (0 to 1), given
        its nearest out-of-scope question when the base lists any."""
        return model(out_of_scope is not None).confidence(evidence(candidates, out_of_scope))

    def threshold(self, out_of_scope: Nearest | None = None) -> float:
        """The confidence a card needs (0: abstention is off)."""
        if self.min_confidence is not None:
            return self.min_confidence
        return model(out_of_scope is not None).threshold

    def select(self, candidates: tuple[Candidate, ...], limit: int,
               out_of_scope: Nearest | None = None
               ) -> tuple[tuple[Candidate, ...], Reason, float | None]:
        """What the card shows, best first; why the best was shown or withheld; and the
        confidence (None when nothing was judged: no question, or abstention off)."""
        if not candidates:
            return (), "no-question", None
        confidence = None
        threshold = self.threshold(out_of_scope)
        if threshold > 0:
            confidence = self.confidence(candidates, out_of_scope)
            if confidence < threshold:
                return (), "weak", confidence
        related = [c for c in candidates[1:]
                   if c.words_rank > 0 or meaning(c) >= self.related_meaning]
        chosen = (candidates[0], *related)[:limit]
        return chosen, "always" if confidence is None else "confident", confidence
