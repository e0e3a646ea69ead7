"""The FAQ's hit rate on the example knowledge base, with floors under the measured figures.

58 articles (examples/kb/*.yaml) and two labelled sets: the development set
(tests/faq_dev_set.yaml, 154 questions and 36 unanswerable: tuned on) and the test set
(tests/faq_test_set.yaml, 130 and 33: never tuned on). The floors are on the development set,
next to the search before issue 16 (bench/faq_baseline.py) measured on the same questions in the
same run; the test set's figures are reported by bench/faq_hit_rate.py and docs/faq.md, not
asserted here (a floor on them would invite tuning on them).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.faq_baseline import BaselineSearch
from pipelines.knowledge import KnowledgeBase
from pipelines.loader import load_config
from pipelines.search.evaluation import LabelledSet, measure

ROOT = Path(__file__).resolve().parents[1]
DEV = LabelledSet.load(Path(__file__).parent / "faq_dev_set.yaml")
TEST = LabelledSet.load(Path(__file__).parent / "faq_test_set.yaml")


@pytest.fixture(scope="module")
def kb() -> KnowledgeBase:
    config, _ = load_config(ROOT / "examples" / "helpdesk.yaml")
    knowledge = config.knowledge_base("service-desk")
    assert knowledge is not None
    return knowledge


@pytest.mark.parametrize("labelled", [DEV, TEST], ids=["dev", "test"])
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


def test_the_test_set_is_as_varied_as_users_and_shares_no_question_with_the_dev_set() -> None:
    kinds = {kind for item in TEST.answerable for kind in item.kinds}
    assert kinds >= {"synonym", "typo", "short", "rambling", "first-person", "two-topics",
                     "negation", "false-friend"}
    unanswerable = len(TEST.unanswerable) / (len(TEST.unanswerable) + len(TEST.answerable))
    assert unanswerable >= 0.20
    questions = [i.question.casefold() for i in (*TEST.answerable, *TEST.unanswerable)]
    assert len(set(questions)) == len(questions)
    dev = {i.question.casefold() for i in (*DEV.answerable, *DEV.unanswerable)}
    assert not dev & set(questions)


def test_hit_rate_on_the_development_set_beats_bm25_alone(kb: KnowledgeBase) -> None:
    shown = measure(lambda q: [a.id for a in kb.search(q).articles], DEV)
    ranking = measure(lambda q: [c.article_id for c in kb.search(q).candidates[:3]], DEV)
    baseline = BaselineSearch(kb.articles)
    old = measure(baseline.search, DEV)
    print(f"\nFAQ hit rate, dev set ({shown.questions} questions, {len(kb.articles)} articles)")
    print(f"  as shown: top-1 {shown.top1:.3f}, top-3 {shown.top3:.3f}, "
          f"{shown.unanswerable_shown} of {shown.unanswerable} unanswerable shown a card")
    print(f"  ranking alone: top-1 {ranking.top1:.3f}, top-3 {ranking.top3:.3f}")
    print(f"  BM25 only (before): top-1 {old.top1:.3f}, top-3 {old.top3:.3f}, "
          f"{old.unanswerable_shown} of {old.unanswerable}")
    # measured: as shown 0.825 / 0.896, 4 of 36; ranking 0.864 / 0.961
    # BM25 only on the same questions: 0.844 / 0.896, 14 of 36
    assert shown.top3 >= 0.89 and shown.top3 >= old.top3
    assert shown.unanswerable_shown <= 4 and shown.unanswerable_shown < old.unanswerable_shown
    assert ranking.top1 >= 0.86 and ranking.top3 >= 0.95
    # top-1 as shown is below BM25's (0.844): the price of the card withheld more often;
    # see docs/faq.md
    assert shown.top1 >= 0.82
