"""The FAQ's hit rate on the example knowledge base, with floors under the measured figures.

58 articles (examples/kb/*.yaml) and the labelled sets: the development set
(tests/faq_dev_set.yaml, 2,312 questions and 570 unanswerable, by thirteen authors: tuned on, and
the source of the articles' example questions and of the base's out-of-scope questions, so
measured cross-validated) and the test sets (tests/faq_test_set_N.yaml, 200 and 50 each: never
tuned on; the second to sixth were retired into the development set in issue 16's seventh round).
The floors are on the development set, next to the search before issue 16
(bench/faq_baseline.py) measured on the same questions in the same run; the test sets' figures
are reported by bench/faq_hit_rate.py and docs/faq.md, not asserted here (a floor on them would
invite tuning on them).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.faq_baseline import BaselineSearch
from pipelines.knowledge import KnowledgeBase
from pipelines.search.evaluation import (
    LabelledSet,
    cross_validated,
    labelled_test_sets,
    measure,
)

ROOT = Path(__file__).resolve().parents[1]
DEV = LabelledSet.load(Path(__file__).parent / "faq_dev_set.yaml")
# every test set, oldest first; a new one joins by its file alone
TESTS = {name: LabelledSet.load(path)
         for name, path in labelled_test_sets(Path(__file__).parent).items()}
IDS = [name.replace(" ", "-") for name in TESTS]


def test_every_test_set_is_found_oldest_first() -> None:
    """The bench and these tests find the sets by their files: one removed or misnamed would
    quietly drop out of both."""
    assert list(TESTS) == [f"test {n}" for n in range(7, 11)]


@pytest.mark.parametrize("labelled", [DEV, *TESTS.values()], ids=["dev", *IDS])
def test_the_labelled_sets_are_big_varied_and_point_at_real_articles(
    kb: KnowledgeBase, labelled: LabelledSet
) -> None:
    ids = {a.id for a in kb.articles}
    assert len(labelled.answerable) >= 100
    assert all(set(item.answers) <= ids and item.answers for item in labelled.answerable)
    unanswerable = len(labelled.unanswerable)
    assert unanswerable / (unanswerable + len(labelled.answerable)) >= 0.18
    # questions are not copies of titles
    titles = {a.title.casefold() for a in kb.articles}
    assert not titles & {item.question.casefold() for item in labelled.answerable}


@pytest.mark.parametrize("test", TESTS.values(), ids=IDS)
def test_the_test_set_is_as_varied_as_users_and_shares_no_question_with_the_dev_set(
        test: LabelledSet) -> None:
    kinds = {kind for item in test.answerable for kind in item.kinds}
    assert kinds >= {"synonym", "typo", "short", "rambling", "first-person", "two-topics",
                     "negation", "false-friend"}
    unanswerable = len(test.unanswerable) / (len(test.unanswerable) + len(test.answerable))
    assert unanswerable >= 0.20
    questions = [i.question.casefold() for i in (*test.answerable, *test.unanswerable)]
    assert len(set(questions)) == len(questions)
    dev = {i.question.casefold() for i in (*DEV.answerable, *DEV.unanswerable)}
    assert not dev & set(questions)


def test_hit_rate_on_the_development_set_beats_bm25_alone(kb: KnowledgeBase) -> None:
    shown = cross_validated(kb, DEV,
                            lambda base, q: [a.id for a in base.search(q).articles])
    ranking = cross_validated(
        kb, DEV, lambda base, q: [c.article_id for c in base.search(q).candidates[:3]])
    baseline = BaselineSearch(kb.articles)
    old = measure(baseline.search, DEV)
    print(f"\nFAQ hit rate, dev set ({shown.questions} questions, {len(kb.articles)} articles)")
    print(f"  as shown: top-1 {shown.top1:.3f}, top-3 {shown.top3:.3f}, "
          f"{shown.unanswerable_shown} of {shown.unanswerable} unanswerable shown a card")
    print(f"  ranking alone: top-1 {ranking.top1:.3f}, top-3 {ranking.top3:.3f}")
    print(f"  BM25 only (before): top-1 {old.top1:.3f}, top-3 {old.top3:.3f}, "
          f"{old.unanswerable_shown} of {old.unanswerable}")
    # measured (cross-validated): as shown 0.900 / 0.933, 52 of 570; ranking 0.936 / 0.986;
    # BM25 only on the same questions: 0.657 / 0.763, 383 of 570. (Before the seventh round, on
    # 1,182 and 291 by seven authors: 0.815 / 0.863, 41 of 291.)
    assert shown.top1 >= 0.88 and shown.top1 > old.top1
    assert shown.top3 >= 0.92 and shown.top3 > old.top3
    assert shown.unanswerable_shown <= 60 and shown.unanswerable_shown < old.unanswerable_shown
    assert ranking.top1 >= 0.92 and ranking.top3 >= 0.97


def test_the_articles_example_questions_are_development_questions_only(
        kb: KnowledgeBase) -> None:
    examples = {q.casefold() for a in kb.articles for q in a.questions}
    assert len(examples) >= 200
    assert examples <= {i.question.casefold() for i in DEV.answerable}
    for test in TESTS.values():
        assert not examples & {i.question.casefold() for i in (*test.answerable,
                                                                *test.unanswerable)}


def test_every_development_question_has_its_author() -> None:
    """The by-author tables (bench/faq_fit_confidence.py) read the authors from the set's blocks:
    a block nobody is named for would be lumped with the one before it, or stop the script."""
    from bench.faq_fit_confidence import AUTHORS, authors

    wrote = authors()
    asked = [i.question for i in (*DEV.answerable, *DEV.unanswerable)]
    assert set(asked) == set(wrote)
    per_author = {a: sum(1 for q in asked if wrote[q] == a) for a in set(AUTHORS.values())}
    assert len(per_author) == 13 and min(per_author.values()) >= 150, per_author
