"""English words and how common each is: the frequency dictionary that ships inside symspellpy
(82,765 words with their counts in a large English corpus), read once.

The typo corrector never corrects an English word (pipelines.search.typos); the word-by-word
coverage weighs a question's rare words above its common ones (pipelines.search.coverage):
"projector" says more about the need than "work".
"""

from __future__ import annotations

import functools
import math
from collections.abc import KeysView

__all__ = ["english_words", "rarity"]

# the rarity of a word the dictionary does not know (a name, a product, a typo left over),
# and the bounds of every rarity: the commonest words weigh 1, none more than MAX_RARITY
UNKNOWN_COUNT = 10_000
MAX_RARITY = 12.0


@functools.cache
def _counts() -> dict[str, int]:
    from importlib.resources import files

    text = (files("symspellpy") / "frequency_dictionary_en_82_765.txt").read_text("utf-8")
    counts: dict[str, int] = {}
    for line in text.splitlines():
        word, _, count = line.partition(" ")
        if word:
            counts[word] = int(count or 1)
    return counts


@functools.cache
def _top() -> int:
    return max(_counts().values())


def english_words() -> KeysView[str]:
    """Every word of the dictionary (the counts' own keys: no second table of 82,765 words)."""
    return _counts().keys()


def rarity(word: str) -> float:
    """log(count of the commonest word / this word's count), from 1 to MAX_RARITY. Not cached:
    its argument is whatever a guest typed, and a lookup and a log cost less than a cache."""
    count = _counts().get(word, UNKNOWN_COUNT)
    return min(max(math.log(_top() / count), 1.0), MAX_RARITY)
