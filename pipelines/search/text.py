"""Words to terms: how a question and an article are normalised alike for word matching.

Lowercased, apostrophes dropped ("can't" -> "cant"), split into words, English stopwords and
help-desk filler ("help", "please") removed, Snowball-stemmed (PyStemmer), so "printing" and
"printer" meet. Hyphenated words count whole and in parts ("wi-fi": "wifi", "wi", "fi").

Negations and particles keep their meaning instead of being dropped as stopwords: a negation
("no", "not", "cant", "wont"...) is joined to the next word ("no internet" -> `no~internet`,
"won't start" -> `no~start`), a particle ("off", "out", "up", "down") to the words on either
side ("day off" -> `day~off`, "locked out" -> `lock~out`, "out of toner" -> `out~toner`). The
joined terms match only the same phrase in an article, so "day off" finds the article that says
"day off" and not every article that mentions a day.
"""

from __future__ import annotations

import functools
import re
from typing import Any

__all__ = ["JOIN", "Token", "content_words", "stemmer", "surface_words", "terms", "words"]

# a negation or particle and its neighbour, in one term
JOIN = "~"
NEGATIONS = frozenset({
    "no", "not", "nor", "never", "without", "cant", "cannot", "dont", "doesnt", "isnt", "wont",
    "didnt", "arent", "wasnt", "werent", "havent", "hasnt", "couldnt", "wouldnt", "shouldnt",
    "aint", "nothing", "nobody",
})
PARTICLES = frozenset({"off", "out", "up", "down"})
# words that say nothing about *what* the guest needs, on top of the English stopwords
HELP_DESK_STOPWORDS = frozenset({
    "help", "helpdesk", "please", "pls", "plz", "thanks", "thank", "hi", "hello", "hey",
    "need", "want", "like", "would", "could", "can", "get", "got", "know", "tell", "anyone",
    "someone", "question", "issue", "problem", "also", "still", "today", "im", "ive", "id",
    "ill", "youre", "thats", "whats", "wheres", "theres", "lets",
})
_WORD = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
_APOSTROPHES = str.maketrans("", "", "'\u2019`")


def words(text: str) -> list[str]:
    """The lowercased words of `text`, apostrophes dropped, hyphenated words whole."""
    return _WORD.findall(text.casefold().translate(_APOSTROPHES))


def surface_words(text: str) -> set[str]:
    """Every word a typo may be corrected to (unstemmed), hyphenated words also joined."""
    found: set[str] = set()
    for word in words(text):
        parts = word.split("-")
        found.update(parts)
        if len(parts) > 1:
            found.add("".join(parts))
    return found


def content_words(word_list: list[str]) -> list[str]:
    """The words that say what a question is about: no stopword, negation, particle, number or
    single letter (pipelines.search.coverage explains each of them by an article's words)."""
    stop = _stopwords()
    return [w for w in word_list if w not in stop and w not in NEGATIONS and w not in PARTICLES
            and not w.isdigit() and len(w) > 1]


@functools.cache
def _stopwords() -> frozenset[str]:
    from bm25s.stopwords import STOPWORDS_EN_PLUS

    english = {w.replace("'", "") for w in STOPWORDS_EN_PLUS}
    return frozenset((english | HELP_DESK_STOPWORDS) - NEGATIONS - PARTICLES)


@functools.cache
def stemmer() -> Any:
    """Snowball English (PyStemmer), as bm25s recommends; built once."""
    import Stemmer

    return Stemmer.Stemmer("english")


class Token:
    """One word on its way to terms: `kind` is "word", "negation", "particle" or "stop"."""


    __slots__ = ("kind", "stems")

    def __init__(self, kind: str, stems: list[str]) -> None:
        self.kind = kind
        self.stems = stems


def _tokens(word_list: list[str]) -> list[Token]:
    stop, stem = _stopwords(), stemmer().stemWord
    out = []
    for word in word_list:
        if word in NEGATIONS:
            out.append(Token("negation", []))
        elif word in PARTICLES:
            out.append(Token("particle", [word]))
        elif word in stop or (len(word) < 2 and not word.isdigit()):
            out.append(Token("stop", []))
        else:
            out.append(Token("word", [stem(word)]))
    return out


def terms(text: str | list[str]) -> list[str]:
    """The terms `text` (or its words, already split) is indexed or searched by."""
    split = words(text) if isinstance(text, str) else text
    parts = [part for word in split for part in word.split("-") if part]
    tokens = _tokens(parts)
    found: list[str] = []
    for i, token in enumerate(tokens):
        if token.kind == "word":
            found.extend(token.stems)
        elif token.kind == "negation":
            after = _neighbour(tokens, i, +1)
            if after is not None:
                found.append(f"no{JOIN}{after}")
        elif token.kind == "particle":
            particle = token.stems[0]
            before, after = _neighbour(tokens, i, -1), _neighbour(tokens, i, +1)
            if before is not None:
                found.append(f"{before}{JOIN}{particle}")
            if after is not None:
                found.append(f"{particle}{JOIN}{after}")
    stem = stemmer().stemWord
    found.extend(stem(word.replace("-", "")) for word in split if "-" in word)
    return found


def _neighbour(tokens: list[Token], index: int, step: int, reach: int = 2) -> str | None:
    """The first content word's main stem within `reach` words of tokens[index] (stopwords
    between are skipped: "out of toner"), or None."""
    position = index
    for _ in range(reach):
        position += step
        if not 0 <= position < len(tokens):
            return None
        token = tokens[position]
        if token.kind == "word":
            return token.stems[0]
        if token.kind != "stop":
            return None
    return None
