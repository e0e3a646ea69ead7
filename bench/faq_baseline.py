"""The FAQ search before issue 16, frozen for comparison: BM25 only (bm25s + PyStemmer), with
negations and particles dropped as stopwords, no typo tolerance, a card when the best article
scores `min_score` 0.5 distinctive words, and the others at half the best's score. Copied from
pipelines/knowledge.py as of commit 5f71cbd; bench/faq_hit_rate.py runs it on the same
questions as the current search."""

from __future__ import annotations

import logging
import math

HELP_DESK_STOPWORDS = (
    "help", "helpdesk", "please", "pls", "plz", "thanks", "thank", "hi", "hello", "hey",
    "need", "want", "like", "would", "could", "can", "get", "got", "know", "tell", "anyone",
    "someone", "question", "issue", "problem", "also", "still", "today", "im", "ive", "cant",
    "dont", "doesnt", "isnt", "wont", "didnt",
)
TITLE_WEIGHT = 2
MIN_SCORE = 0.5
RELATED_SHARE = 0.5


class BaselineSearch:
    def __init__(self, articles: list) -> None:
        import bm25s
        import Stemmer
        from bm25s.stopwords import STOPWORDS_EN_PLUS

        logging.getLogger("bm25s").setLevel(logging.WARNING)
        self.ids = [a.id for a in articles]
        self.stemmer = Stemmer.Stemmer("english")
        english = {w.replace("'", "") for w in STOPWORDS_EN_PLUS}
        self.stopwords = sorted(english | set(HELP_DESK_STOPWORDS))
        texts = []
        for a in articles:
            about = " ".join([a.title, *a.keywords])
            texts.append(" ".join([about] * TITLE_WEIGHT + [a.answer]))
        self.retriever = bm25s.BM25()
        self.retriever.index(self._tokenize(texts), show_progress=False)
        count = len(articles)
        self.unit = math.log(1 + (count - 0.5) / 1.5)

    def _tokenize(self, texts: list[str]) -> list[list[str]]:
        import bm25s

        cleaned = [t.replace("'", "").replace("\u2019", "") for t in texts]
        return bm25s.tokenize(cleaned, lower=True, stopwords=self.stopwords,
                              stemmer=self.stemmer, return_ids=False, show_progress=False,
                              allow_empty=False)

    def search(self, question: str, limit: int = 3) -> list[str]:
        [tokens] = self._tokenize([question])
        known = [t for t in tokens if t and t in self.retriever.vocab_dict]
        if not known:
            return []
        scores = [float(s) / self.unit for s in self.retriever.get_scores(known)]
        ranked = sorted((s, i) for i, s in enumerate(scores) if s > 0)
        ranked.sort(key=lambda pair: -pair[0])
        if not ranked or ranked[0][0] < MIN_SCORE:
            return []
        best = ranked[0][0]
        return [self.ids[i] for s, i in ranked if s >= RELATED_SHARE * best][:limit]
