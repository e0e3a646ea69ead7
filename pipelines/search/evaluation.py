"""How well the FAQ finds the right article, on labelled questions (bench/faq_hit_rate.py and
tests/test_faq_hit_rate.py).

A labelled set is a YAML file: `questions`, each `{q, a, kind}` (`a` an article id, or a list
when the question asks two things), and `no_answer`, each `{q, kind}`. Top-1: the card's first
article is (one of) the right one(s); top-3: one is on the card. A question whose card is
withheld misses both.

When the articles' example questions (`questions`) and the base's `out_of_scope` questions were
taken from the set itself, measuring it directly would grade the search on questions it holds:
`cross_validated` measures each fold of the set on a base that leaves that fold's questions out
of both.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

if TYPE_CHECKING:
    from pipelines.knowledge import KnowledgeBase

__all__ = ["HitRate", "Labelled", "LabelledSet", "cross_validated", "fold_bases",
           "labelled_test_sets", "measure", "without_examples"]


@dataclass(frozen=True)
class Labelled:
    question: str
    answers: tuple[str, ...]  # empty: the base cannot answer it
    kinds: tuple[str, ...] = ()


@dataclass(frozen=True)
class LabelledSet:
    answerable: tuple[Labelled, ...]
    unanswerable: tuple[Labelled, ...]

    @classmethod
    def load(cls, path: Path) -> LabelledSet:
        raw = yaml.safe_load(path.read_text("utf-8"))

        def one(item: dict, answers: object) -> Labelled:
            ids = (answers,) if isinstance(answers, str) else tuple(answers or ())
            return Labelled(str(item["q"]), ids, tuple(item.get("kind") or ()))

        return cls(
            answerable=tuple(one(item, item["a"]) for item in raw["questions"]),
            unanswerable=tuple(one(item, ()) for item in raw["no_answer"]),
        )


@dataclass(frozen=True)
class HitRate:
    questions: int
    top1: float
    top3: float
    shown_per_question: float  # articles on the card, on average (answerable questions)
    unanswerable: int
    unanswerable_shown: int
    misses: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...]  # question, right, shown
    false_cards: tuple[tuple[str, tuple[str, ...]], ...]  # unanswerable question, shown
    latencies_ms: tuple[float, ...]  # one per search

    @property
    def unanswerable_share(self) -> float:
        return self.unanswerable_shown / max(self.unanswerable, 1)

    def by_kind(self, labelled: LabelledSet, search: Search) -> dict[str, tuple[int, float]]:
        """Top-3 per kind of question: kind -> (count, top-3)."""
        out: dict[str, list[int]] = {}
        for item in labelled.answerable:
            hit = bool(set(item.answers) & set(search(item.question)[:3]))
            for kind in item.kinds:
                out.setdefault(kind, []).append(hit)
        return {k: (len(v), sum(v) / len(v)) for k, v in sorted(out.items())}


# a search as the card shows it: question -> article ids on the card, best first
Search = Callable[[str], list[str]]


def measure(search: Search, labelled: LabelledSet) -> HitRate:
    top1 = top3 = shown = 0
    misses = []
    latencies = []
    for item in labelled.answerable:
        started = time.perf_counter()
        found = tuple(search(item.question))
        latencies.append((time.perf_counter() - started) * 1000)
        shown += len(found)
        top1 += bool(found) and found[0] in item.answers
        top3 += bool(set(found[:3]) & set(item.answers))
        if not (found and found[0] in item.answers):
            misses.append((item.question, item.answers, found))
    false_cards = []
    for item in labelled.unanswerable:
        started = time.perf_counter()
        found = tuple(search(item.question))
        latencies.append((time.perf_counter() - started) * 1000)
        if found:
            false_cards.append((item.question, found))
    count = max(len(labelled.answerable), 1)
    return HitRate(
        questions=len(labelled.answerable),
        top1=top1 / count,
        top3=top3 / count,
        shown_per_question=shown / count,
        unanswerable=len(labelled.unanswerable),
        unanswerable_shown=len(false_cards),
        misses=tuple(misses),
        false_cards=tuple(false_cards),
        latencies_ms=tuple(latencies),
    )


def merge(rates: Sequence[HitRate]) -> HitRate:
    """One hit rate from several measured on disjoint questions."""
    questions = sum(r.questions for r in rates)
    count = max(questions, 1)
    return HitRate(
        questions=questions,
        top1=sum(r.top1 * r.questions for r in rates) / count,
        top3=sum(r.top3 * r.questions for r in rates) / count,
        shown_per_question=sum(r.shown_per_question * r.questions for r in rates) / count,
        unanswerable=sum(r.unanswerable for r in rates),
        unanswerable_shown=sum(r.unanswerable_shown for r in rates),
        misses=tuple(m for r in rates for m in r.misses),
        false_cards=tuple(f for r in rates for f in r.false_cards),
        latencies_ms=tuple(t for r in rates for t in r.latencies_ms),
    )


def without_examples(base: KnowledgeBase, part: LabelledSet) -> KnowledgeBase:
    """`base` without the questions `part` asks (compared casefolded) among its articles'
    example questions and its out-of-scope questions, so none of them is graded by a base that
    holds it."""
    from pipelines.knowledge import KnowledgeBase

    held = {i.question.casefold() for i in (*part.answerable, *part.unanswerable)}
    return KnowledgeBase(articles=[
        a.model_copy(update={"questions": [q for q in a.questions
                                           if q.casefold() not in held]})
        for a in base.articles
    ], out_of_scope=[q for q in base.out_of_scope if q.casefold() not in held]).build()


def fold_bases(base: KnowledgeBase, labelled: LabelledSet, *, count: int = 5,
               seed: int = 16) -> Iterator[tuple[LabelledSet, KnowledgeBase]]:
    """`labelled` in `count` parts, each with `base` without the questions that part asks
    (`without_examples`), so no question is graded by a base that holds it."""

    rng = random.Random(seed)
    answerable, unanswerable = list(labelled.answerable), list(labelled.unanswerable)
    rng.shuffle(answerable)
    rng.shuffle(unanswerable)
    for fold in range(count):
        part = LabelledSet(tuple(answerable[fold::count]), tuple(unanswerable[fold::count]))
        yield part, without_examples(base, part)


def cross_validated(base: KnowledgeBase, labelled: LabelledSet,
                    search: Callable[[KnowledgeBase, str], list[str]], *, folds: int = 5,
                    seed: int = 16) -> HitRate:
    """`labelled` measured in `folds` parts, each on a base that has not seen that part's
    questions (`fold_bases`)."""
    return merge([measure(lambda q, fold=fold: search(fold, q), part)
                  for part, fold in fold_bases(base, labelled, count=folds, seed=seed)])


def labelled_test_sets(folder: Path) -> dict[str, Path]:
    """The test sets in `folder`, oldest first, by name: `faq_test_set_N.yaml` is "test N" (the
    first to sixth were retired into the development set). A new set joins the bench and the
    tests by its file alone."""
    def number(path: Path) -> int:
        return int(path.stem.removeprefix("faq_test_set_"))

    found = sorted(folder.glob("faq_test_set_*.yaml"), key=number)
    return {f"test {number(p)}": p for p in found}
