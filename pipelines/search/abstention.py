"""Knowing when to stay quiet: a card only when the evidence is real.

The best fused candidate is shown when one of these holds (thresholds chosen on the development
set, tests/faq_dev_set.yaml; docs/faq.md has the figures):

- `words`: it shares distinctive words with the question, at least `min_words` of them in BM25
  units (pipelines.search.lexical): a word of its title or keywords that few articles use, or
  several common ones. One common word ("work", "new", "open") scores far less. The meaning
  must not be far off (cosine `words_meaning`): "where is the office library" shares only
  "library" with the open-source article.
- `agreement`: both rankings put it in their first `agree_rank`, with at least
  `agree_meaning` cosine similarity and `agree_words` distinctive words: the two methods, which
  fail differently, point at the same article. When the only word in common is one many
  articles use ("laptop" in an IT base: pipelines.search.index.COMMON_SHARE), the meaning must
  reach `common_word_meaning`.
- `meaning`: its cosine similarity alone reaches `min_meaning` (a paraphrase without a shared
  word; static embeddings are rarely that sure).

A cosine that comes from the article's example questions (the centroid of its `questions`)
counts `example_discount` less: questions resemble each other more than a question and a title
do.
Otherwise nothing is shown. `min_words` 0 turns abstention off: the best candidate is always
shown. Once the best is shown, the card carries the next best fused candidates too (at most the
stage's `max_results`) that share a word with the question or come close in meaning
(`agree_meaning`): on the development set, asking each of them for the full evidence instead
cut top-3 from 0.909 to 0.870 and changed nothing for the questions that should get no card.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pipelines.search.index import Candidate

__all__ = ["Abstention", "Reason"]

Reason = Literal[
    "words", "agreement", "meaning", "always",  # shown
    "no-question", "weak",  # withheld
]


@dataclass(frozen=True)
class Abstention:
    min_words: float = 0.8
    min_meaning: float = 0.6
    agree_rank: int = 3
    agree_meaning: float = 0.35
    agree_words: float = 0.3
    common_word_meaning: float = 0.45
    # a cosine that came from an example question counts this much less: questions resemble
    # each other more than a question resembles a title ("I left my keys at reception" and
    # "I left my laptop on the train")
    example_discount: float = 0.15
    # the words alone show a card only when the meaning is not far off either
    words_meaning: float = 0.1

    def meaning(self, candidate: Candidate) -> float:
        """The candidate's cosine as evidence (its example questions' counts less)."""
        return candidate.meaning - (self.example_discount if candidate.by_example else 0.0)

    def reason(self, candidate: Candidate) -> Reason | None:
        """Why `candidate` may be shown, or None."""
        if self.min_words <= 0:
            return "always"
        meaning = self.meaning(candidate)
        if candidate.words >= self.min_words and meaning >= self.words_meaning:
            return "words"
        if (0 < candidate.words_rank <= self.agree_rank
                and candidate.meaning_rank <= self.agree_rank
                and candidate.words >= self.agree_words
                and meaning >= (self.common_word_meaning
                                if candidate.one_common_word else self.agree_meaning)):
            return "agreement"
        if meaning >= self.min_meaning:
            return "meaning"
        return None

    def select(self, candidates: tuple[Candidate, ...], limit: int
               ) -> tuple[tuple[Candidate, ...], Reason]:
        """What the card shows, best first, and why the best was shown or withheld."""
        if not candidates:
            return (), "no-question"
        reason = self.reason(candidates[0])
        if reason is None:
            return (), "weak"
        related = [c for c in candidates[1:]
                   if c.words_rank > 0 or self.meaning(c) >= self.agree_meaning]
        return (candidates[0], *related)[:limit], reason
