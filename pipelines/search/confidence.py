"""How sure the search is that its best article answers the question: a logistic model over
the evidence, fitted on the development set (tests/faq_dev_set.yaml) by
`bench/faq_fit_confidence.py`, which writes `confidence_model.json` beside this module, and
`confidence_model_out_of_scope.json` for a base that lists questions it does not answer.

Hand-set thresholds on each kind of evidence (words in common, cosine, both rankings agreeing)
were tuned on the same questions before; on questions written by another author they withheld
answers they had and carded questions they could not answer (docs/faq.md). One model that
weighs all the evidence together, fitted on questions each measured on a base that had not seen
them, moves smoothly with it: one number decides, and `min_score` sets how sure is sure enough.

The evidence (`FEATURES`), for the best candidate: its words in common (BM25, in distinctive
words, capped at 3), its cosine (an example question's counts `EXAMPLE_DISCOUNT` less: questions
resemble each other more than a question and a title do), how much of the question it explains
word by word (pipelines.search.coverage: the mean, the least explained word, the share
explained), whether the words (BM25) and the meaning rankings each put it first and both in
their first three, how far its cosine is ahead of the next candidate's, whether its only word
in common is one many articles use, and how many content words the question has ("hi", "tell
me a joke" have none or one).
Chosen on the development set split by author (docs/faq.md): with six of these the model
carded more unanswerable questions and kept fewer answers; without the word-by-word coverage,
more still.

A base with `out_of_scope` questions (pipelines.search.out_of_scope) adds two
(`OUT_OF_SCOPE_FEATURES`): the cosine of the nearest of them, and how well it explains the
question word by word. It has its own model, fitted with them: a base without any keeps the
first, whose evidence a missing list cannot skew.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipelines.search.coverage import Coverage
from pipelines.search.index import Candidate
from pipelines.search.out_of_scope import Nearest
from pipelines.search.semantic import ModelUnavailable

__all__ = ["EXAMPLE_DISCOUNT", "FEATURES", "MODEL_FILE", "OUT_OF_SCOPE_FEATURES",
           "OUT_OF_SCOPE_MODEL_FILE", "Model", "evidence", "meaning", "model"]

FEATURES = (
    "words", "meaning", "coverage_mean", "coverage_least", "coverage_explained",
    "words_first", "meaning_first", "meaning_lead", "one_common_word", "content_words",
    "both_in_first_three",
)
OUT_OF_SCOPE_FEATURES = (*FEATURES, "out_of_scope", "out_of_scope_words")
# a cosine that came from the article's example questions counts this much less
EXAMPLE_DISCOUNT = 0.15
WORDS_CAP = 3.0
MODEL_FILE = Path(__file__).with_name("confidence_model.json")
OUT_OF_SCOPE_MODEL_FILE = Path(__file__).with_name("confidence_model_out_of_scope.json")


def meaning(candidate: Candidate) -> float:
    """The candidate's cosine as evidence (its example questions' counts less)."""
    return candidate.meaning - (EXAMPLE_DISCOUNT if candidate.by_example else 0.0)


def evidence(candidates: Sequence[Candidate], out_of_scope: Nearest | None = None
             ) -> np.ndarray:
    """The features of the best candidate (candidates[0], which carries its coverage), and of
    the question's nearest out-of-scope question when the base lists any."""
    best = candidates[0]
    coverage = best.coverage or Coverage()
    nearest = [] if out_of_scope is None else [out_of_scope.cosine, out_of_scope.explained]
    return np.asarray([
        min(best.words, WORDS_CAP),
        meaning(best),
        coverage.mean,
        coverage.least,
        coverage.explained,
        float(best.words_rank == 1),
        float(best.meaning_rank == 1),
        best.meaning - max((c.meaning for c in candidates[1:]), default=0.0),
        float(best.one_common_word),
        float(coverage.words),
        float(0 < best.words_rank <= 3 and best.meaning_rank <= 3),
        *nearest,
    ], dtype=np.float64)


@dataclass(frozen=True)
class Model:
    """Standardised logistic regression: P(the card answers) = sigmoid(bias + weights . z)."""

    features: tuple[str, ...]  # what each weight weighs (FEATURES or OUT_OF_SCOPE_FEATURES)
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    weights: tuple[float, ...]
    bias: float
    # the confidence a card needs by default: chosen with the model on the development set
    # (bench/faq_fit_confidence.py)
    threshold: float = 0.5

    def confidence(self, features: np.ndarray) -> float:
        z = (features - np.asarray(self.mean)) / np.asarray(self.scale)
        return float(1.0 / (1.0 + np.exp(-(self.bias + float(np.dot(self.weights, z))))))

    @classmethod
    def fit(cls, names: tuple[str, ...], features: np.ndarray, answers: np.ndarray, *,
            l2: float = 1.0, iterations: int = 50) -> Model:
        """Newton's method on the L2-penalised log-likelihood (the bias is not penalised):
        deterministic, no library needed for eleven numbers."""
        mean = features.mean(axis=0)
        scale = features.std(axis=0)
        scale = np.where(scale > 0, scale, 1.0)
        z = np.c_[np.ones(len(features)), (features - mean) / scale]
        penalty = l2 * np.diag(np.r_[0.0, np.ones(z.shape[1] - 1)])
        w = np.zeros(z.shape[1])
        for _ in range(iterations):
            p = 1.0 / (1.0 + np.exp(-(z @ w)))
            gradient = z.T @ (p - answers) + penalty @ w
            hessian = (z * (p * (1 - p))[:, None]).T @ z + penalty
            step = np.linalg.solve(hessian, gradient)
            w -= step
            if float(np.abs(step).max()) < 1e-10:
                break
        return cls(features=names, mean=tuple(float(x) for x in mean),
                   scale=tuple(float(x) for x in scale),
                   weights=tuple(float(x) for x in w[1:]), bias=float(w[0]))

    def to_json(self, **about: object) -> str:
        body = {"features": list(self.features), "threshold": self.threshold,
                "bias": round(self.bias, 6),
                "weights": [round(x, 6) for x in self.weights],
                "mean": [round(x, 6) for x in self.mean],
                "scale": [round(x, 6) for x in self.scale], **about}
        return json.dumps(body, indent=2) + "\n"

    @classmethod
    def from_json(cls, raw: str, features: tuple[str, ...] = FEATURES) -> Model:
        body = json.loads(raw)
        if tuple(body["features"]) != features:
            raise ValueError(f"it was fitted on other features ({body['features']}): run "
                             f"bench/faq_fit_confidence.py again")
        threshold = float(body["threshold"])
        if not 0 < threshold < 1:
            raise ValueError(f"its threshold {threshold} is not between 0 and 1")
        return cls(features=features, mean=tuple(body["mean"]), scale=tuple(body["scale"]),
                   weights=tuple(body["weights"]), bias=float(body["bias"]),
                   threshold=threshold)


@functools.cache
def model(out_of_scope: bool = False) -> Model:
    """The shipped model (for a base with out-of-scope questions, or without), read once (when
    the config loads: pipelines.knowledge); a missing or damaged file is ModelUnavailable
    naming it, never a traceback in a guest's turn."""
    file, features = ((OUT_OF_SCOPE_MODEL_FILE, OUT_OF_SCOPE_FEATURES) if out_of_scope
                      else (MODEL_FILE, FEATURES))
    try:
        return Model.from_json(file.read_text("utf-8"), features)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelUnavailable(
            f"the FAQ search cannot read its confidence model {file}: "
            f"{type(exc).__name__}: {exc}. It ships with Switchboard: reinstall Switchboard, "
            f"or in a checkout run `bench/faq_fit_confidence.py` to write it again") from None
