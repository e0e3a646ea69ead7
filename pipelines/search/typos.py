"""Typo tolerance: a word of the question that neither the knowledge base nor English knows is
replaced by the closest word of the knowledge base, within a small edit distance.

SymSpell (`symspellpy`) finds the candidates (Damerau-Levenshtein: a swap of two letters is one
edit). English words (the frequency dictionary that ships inside symspellpy, 82,765 words) are
never corrected, so "dog" does not become "dock" nor "car" "card": a real word the articles do
not use is left for the embedding model to understand. Split words are joined when the articles
know them joined ("one drive" -> "onedrive", "pay slip" -> "payslip").
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import TYPE_CHECKING

from pipelines.search.english import english_words
from pipelines.search.text import stemmer

if TYPE_CHECKING:
    from symspellpy.suggest_item import SuggestItem

__all__ = ["Speller"]

# the shortest word that is corrected, and the edits allowed by length
MIN_LENGTH = 4
LONG_WORD = 7  # from this length, two edits; below it, one


class Speller:
    """Corrects a question's words towards one knowledge base's vocabulary: first to a word
    of the articles, else (for a word whose ending is also wrong: "conecting") to a stem."""

    def __init__(self, vocabulary: Iterable[str]) -> None:
        from symspellpy import SymSpell

        stem = stemmer().stemWord
        counts = Counter(w for w in vocabulary if w.isalpha())
        self.vocabulary = frozenset(counts)
        self._words = SymSpell(max_dictionary_edit_distance=2, prefix_length=7)
        self._stems = SymSpell(max_dictionary_edit_distance=1, prefix_length=7)
        # the most frequent word of each stem, to spell a corrected stem as a word
        self._spelling: dict[str, str] = {}
        for word, count in counts.most_common():
            if len(word) >= MIN_LENGTH - 1:
                self._words.create_dictionary_entry(word, count)
                root = stem(word)
                self._stems.create_dictionary_entry(root, count)
                self._spelling.setdefault(root, word)
        self.correct(["warmup"])  # symspellpy compiles its edit distance on the first lookup

    def correct(self, words: list[str]) -> tuple[list[str], dict[str, str]]:
        """The words with typos fixed and split words joined, and what was changed."""
        out: list[str] = []
        changed: dict[str, str] = {}
        index = 0
        while index < len(words):
            word = words[index]
            pair = word + words[index + 1] if index + 1 < len(words) else ""
            if pair in self.vocabulary:
                changed[f"{word} {words[index + 1]}"] = pair
                out.append(pair)
                index += 2
                continue
            index += 1
            fixed = self._fix(word)
            if fixed != word:
                changed[word] = fixed
            out.append(fixed)
        return out, changed

    def _fix(self, word: str) -> str:
        from symspellpy import Verbosity

        if (len(word) < MIN_LENGTH or not word.isalpha() or word in self.vocabulary
                or word in english_words()):
            return word
        distance = 2 if len(word) >= LONG_WORD else 1
        found = self._words.lookup(word, Verbosity.CLOSEST, max_edit_distance=distance)
        if found:
            return _closest(found, word)
        root = stemmer().stemWord(word)
        if len(root) >= MIN_LENGTH:
            found = self._stems.lookup(root, Verbosity.CLOSEST, max_edit_distance=1)
            if found:
                return self._spelling[_closest(found, root)]
        return word


def _closest(found: list[SuggestItem], typo: str) -> str:
    """The best of SymSpell's closest suggestions. SymSpell orders equally close, equally
    frequent words by Python's string hashes, which differ from process to process: two
    instances would correct the same question differently. Ties go to the more frequent word,
    then to one that starts like the typo (people rarely miss the first letter), then to the
    first alphabetically."""
    return min(found, key=lambda s: (s.distance, -s.count, s.term[:1] != typo[:1], s.term)).term
