"""Questions the knowledge base is known not to answer (`out_of_scope` in a knowledge-base
file): checked when the config loads, embedded once, and evidence that lowers the confidence of
a card for a question close to one of them, through the search and through the real bot."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from app import SESSIONS
from pipelines.knowledge import Article, KnowledgeBase
from pipelines.loader import load_config
from pipelines.search import semantic, text
from pipelines.search.abstention import Abstention
from pipelines.search.confidence import OUT_OF_SCOPE_FEATURES, model
from pipelines.search.coverage import Coverage
from pipelines.search.evaluation import Labelled, LabelledSet, without_examples
from pipelines.search.index import Candidate
from pipelines.search.out_of_scope import Nearest, OutOfScope
from tests.harness import texts
from tests.test_config_more_actions import KB, faq, only_problem, problems

ROOT = Path(__file__).resolve().parents[1]
FLIGHT = "book a flight for my trip to london"


def nearest(scope: OutOfScope, question: str) -> Nearest | None:
    words = text.words(question)
    return scope.nearest(semantic.encoder().embed([" ".join(words)])[0], words)


# --------------------------------------------------------------------------- the evidence


def test_the_nearest_out_of_scope_question_and_how_much_of_the_question_it_explains() -> None:
    scope = OutOfScope(["the car park is full, where do I park",
                        "who won the football last night", "is the canteen open on sunday"])
    found = nearest(scope, "can i park my car at the office")
    assert found is not None and found.question == 0
    assert 0.3 < found.cosine < 1 and 0.3 < found.explained < 1
    same = nearest(scope, "who won the football last night")
    assert same is not None and same.question == 1
    assert same.cosine == pytest.approx(1, abs=1e-5) and same.explained == pytest.approx(1)
    assert nearest(OutOfScope([]), "anything") is None


def candidate() -> Candidate:
    return Candidate("a", 0.8, 1, 0.4, 1, 0.0,
                     coverage=Coverage(mean=0.6, least=0.3, explained=0.6, words=3))


def test_the_closer_an_out_of_scope_question_the_less_sure_the_search() -> None:
    rule = Abstention()
    best = (candidate(), Candidate("b", 0.2, 2, 0.2, 2, 0.0))
    by_cosine = [rule.confidence(best, Nearest(0, cosine, 0.5)) for cosine in (0.2, 0.5, 0.8)]
    by_words = [rule.confidence(best, Nearest(0, 0.5, explained)) for explained in (0.2, 0.6, 1)]
    assert by_cosine == sorted(by_cosine, reverse=True) and by_cosine[0] > by_cosine[-1] + 0.2
    assert by_words == sorted(by_words, reverse=True) and by_words[0] > by_words[-1]
    # the base's own model: with its two features, and a threshold of its own
    assert model(True).features == OUT_OF_SCOPE_FEATURES and 0 < model(True).threshold < 1
    assert rule.threshold(Nearest(0, 0.5, 0.5)) == model(True).threshold
    assert rule.threshold(None) == model(False).threshold
    assert Abstention(min_confidence=0.3).threshold(Nearest(0, 0.5, 0.5)) == 0.3


def test_a_question_like_a_known_out_of_scope_one_gets_no_card(kb: KnowledgeBase) -> None:
    # its best candidate is annual leave ("book"), and without the list the search is half
    # sure of it (0.58); the base lists a question about booking flights through the travel
    # agent as one it does not answer (0.06)
    without = KnowledgeBase(articles=kb.articles).build().search(FLIGHT)
    found = kb.search(FLIGHT)
    assert without.candidates[0].article_id == found.candidates[0].article_id == "hr-annual-leave"
    assert without.confidence is not None and found.confidence is not None
    assert without.confidence > 0.5 and found.confidence < 0.15
    assert found.shown == () and found.reason == "weak"
    assert found.out_of_scope is not None
    assert "flight" in kb.out_of_scope[found.out_of_scope.question]
    # and what it answers it still answers
    assert [m.article.id for m in kb.search("how do I book a day of holiday").shown][:1] == [
        "hr-annual-leave"]


def test_a_fold_holds_out_its_own_out_of_scope_questions() -> None:
    base = KnowledgeBase(articles=[Article(id="a", title="A", answer="x")],
                         out_of_scope=["where do i park", "who won the match"])
    part = LabelledSet((), (Labelled("Who won the match", ()),))
    assert without_examples(base, part).out_of_scope == ["where do i park"]


# --------------------------------------------------------------------------- the config


def test_a_file_of_out_of_scope_questions_beside_the_articles(tmp_path: Path) -> None:
    path = faq("knowledge_base: [kb/it.yaml, kb/none.yaml]", files={
        "kb/it.yaml": KB + "out_of_scope: [where is the canteen]\n",
        "kb/none.yaml": "out_of_scope:\n  - who won the match\n  - the lift is broken\n"},
        tmp_path=tmp_path)
    config, _ = load_config(path)
    knowledge = config.knowledge_base("it")
    assert knowledge is not None
    assert knowledge.out_of_scope == ["where is the canteen", "who won the match",
                                      "the lift is broken"]
    assert knowledge.search("who won the match last night").out_of_scope is not None


def test_bad_out_of_scope_questions_are_named(tmp_path: Path) -> None:
    where = "tenant 'it': `knowledge_base` kb/it.yaml: "
    path = faq(files={"kb/it.yaml": KB + "out_of_scope: where is the canteen\n"},
               tmp_path=tmp_path)
    assert only_problem(path) == (
        where + "`out_of_scope` must be a list of questions no article answers")
    path = faq(files={"kb/it.yaml": KB + f"out_of_scope: ['', ok, [1], '{'x' * 301}']\n"},
               tmp_path=tmp_path)
    assert problems(path) == [
        where + f"out_of_scope[{i}]: each question is a sentence (1 to 300 characters)"
        for i in (0, 2, 3)]


def test_a_tenant_with_only_out_of_scope_questions_has_no_faq(tmp_path: Path) -> None:
    path = faq(files={"kb/it.yaml": "out_of_scope: [who won the match]\n"}, tmp_path=tmp_path)
    assert only_problem(path) == (
        "tenant 'it': `knowledge_base`: its files hold no article (only `out_of_scope` "
        "questions): add the articles the FAQ should show")


def test_a_question_cannot_be_both_answered_and_out_of_scope(tmp_path: Path) -> None:
    kb = ("articles:\n  - {id: a, title: A, answer: x, questions: [Where is the canteen]}\n"
          "out_of_scope: [where is the canteen]\n")
    assert only_problem(faq(files={"kb/it.yaml": kb}, tmp_path=tmp_path)) == (
        "tenant 'it': `knowledge_base`: the question 'where is the canteen' is both out of "
        "scope and an example question of article 'a': keep it in one of them")


def test_the_example_base_lists_development_questions_only(kb: KnowledgeBase) -> None:
    from pipelines.search.evaluation import LabelledSet as Set
    from pipelines.search.evaluation import labelled_test_sets

    dev = Set.load(ROOT / "tests" / "faq_dev_set.yaml")
    listed = {q.casefold() for q in kb.out_of_scope}
    assert len(listed) >= 100
    assert listed <= {i.question.casefold() for i in dev.unanswerable}
    for test in labelled_test_sets(ROOT / "tests").values():
        asked = Set.load(test)
        assert not listed & {i.question.casefold()
                             for i in (*asked.answerable, *asked.unanswerable)}, test


# --------------------------------------------------------------------------- the bot


async def test_through_the_bot_no_card_and_the_record_names_the_nearest(bot, new_chat) -> None:
    chat = new_chat("Phileas Fogg")
    await chat.say("hi")
    shown = texts(await chat.answer(FLIGHT))
    assert "These articles may answer your question:" not in shown
    assert "Book annual leave" not in shown
    [record] = [r for r in await bot.app[SESSIONS].records(None, "faq_answer")
                if r["question"] == FLIGHT]
    assert record["reason"] == "weak" and record["shown"] == []
    near = record["outOfScope"]
    assert "flight" in near["question"] and 0 < near["cosine"] <= 1
    assert np.isfinite(near["explained"])
