"""Questions grouped by similarity, with the FAQ's own embedding model: the questions that got
no card, or whose card did not help, fall into a few groups an admin can write articles for
(`switchboard-admin faq report`).

Leader clustering: each question joins the group whose centroid is closest, if its cosine
similarity reaches `threshold`, else starts a group; then one pass merges each group into an
earlier one whose centroid is as close (a question that came between two others of a need).
The cost is questions x groups, then groups x groups; the order given decides ties (the
report gives the newest first).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from pipelines.search import semantic

__all__ = ["THRESHOLD", "Group", "group_similar"]

# the cosine at which two questions count as the same need, for WordLlama's mean vectors:
# chosen on the development set's unanswerable questions (parking, meeting rooms, trains and
# kitchen leaks each come together; some groups share only a word: "book a flight", "book a
# desk", "a good book")
THRESHOLD = 0.45


@dataclass
class Group:
    """Similar questions (indices into the input), and the centroid they were compared to."""

    members: list[int] = field(default_factory=list)
    total: np.ndarray | None = None

    def add(self, index: int, vector: np.ndarray) -> None:
        self.members.append(index)
        self.total = vector.copy() if self.total is None else self.total + vector

    def centroid(self) -> np.ndarray:
        assert self.total is not None
        norm = float(np.linalg.norm(self.total))
        return self.total / (norm if norm else 1.0)


def group_similar(questions: Sequence[str], threshold: float = THRESHOLD) -> list[list[int]]:
    """Indices of `questions`, grouped by meaning, biggest group first (ties: first seen)."""
    if not questions:
        return []
    vectors = semantic.encoder().embed(list(questions))
    groups: list[Group] = []
    centroids = np.zeros((0, vectors.shape[1]), dtype=np.float32)
    for index, vector in enumerate(vectors):
        if not vector.any():  # no token at all: a group of its own
            groups.append(Group())
            groups[-1].add(index, vector)
            centroids = np.vstack([centroids, vector])
            continue
        similarity = centroids @ vector if len(groups) else np.zeros(0)
        best = int(np.argmax(similarity)) if len(similarity) else -1
        if best >= 0 and similarity[best] >= threshold:
            groups[best].add(index, vector)
            centroids[best] = groups[best].centroid()
        else:
            groups.append(Group())
            groups[-1].add(index, vector)
            centroids = np.vstack([centroids, vector])
    groups = _merged(groups, threshold)
    ordered = sorted(range(len(groups)), key=lambda g: (-len(groups[g].members), g))
    return [sorted(groups[g].members) for g in ordered]


def _merged(groups: list[Group], threshold: float) -> list[Group]:
    """Each group joined to the first earlier group whose centroid is `threshold` close."""
    kept: list[Group] = []
    centroids: list[np.ndarray] = []
    for group in groups:
        centroid = group.centroid()
        if kept:
            similarity = np.stack(centroids) @ centroid
            best = int(np.argmax(similarity))
            if similarity[best] >= threshold:
                for index in group.members:
                    kept[best].members.append(index)
                assert kept[best].total is not None and group.total is not None
                kept[best].total = kept[best].total + group.total
                centroids[best] = kept[best].centroid()
                continue
        kept.append(group)
        centroids.append(centroid)
    return kept
