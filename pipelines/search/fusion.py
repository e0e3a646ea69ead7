"""Several rankings into one: reciprocal rank fusion (Cormack, Clarke & Buettcher, SIGIR 2009).

Each article scores the sum, over the rankings it appears in, of 1 / (K + its rank). Ranks
need no calibration between BM25's scores, cosine similarities and word-by-word coverage, which
live on unrelated scales; K = 60 is the paper's value, and damps the difference between first
and second so that an article two rankings like beats one that only one of them puts first.
The three rankings weigh the same: no weight was tuned.
"""

from __future__ import annotations

import numpy as np

__all__ = ["K", "ranks", "reciprocal_rank_fusion"]

K = 60


def ranks(scores: np.ndarray, *, floor: float | None = None) -> np.ndarray:
    """1-based rank of each score, best first (ties by position); 0 for a score at or below
    `floor` (not in the ranking at all: an article that shares no word with the question)."""
    order = np.argsort(-scores, kind="stable")
    out = np.empty(len(scores), dtype=np.int64)
    out[order] = np.arange(1, len(scores) + 1)
    if floor is not None:
        out[scores <= floor] = 0
    return out


def reciprocal_rank_fusion(*rankings: np.ndarray, k: int = K) -> np.ndarray:
    """The fused score of each article from its ranks (0 = not ranked: adds nothing)."""
    fused = np.zeros(len(rankings[0]), dtype=np.float64)
    for rank in rankings:
        fused += np.where(rank > 0, 1.0 / (k + rank), 0.0)
    return fused
