"""The FAQ search's parts: reciprocal rank fusion, typo tolerance, negations and particles,
abstention, the embedding model (as wordllama computes it, offline, cached), and a missing or
broken model package as a clear start-up error. Searches run on the example's knowledge base
(examples/kb), loaded once for the module."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from pipelines.knowledge import Article, KnowledgeBase
from pipelines.search import semantic, text
from pipelines.search.abstention import Abstention
from pipelines.search.confidence import FEATURES, Model, model
from pipelines.search.coverage import Coverage, WordCoverage
from pipelines.search.evaluation import Labelled, LabelledSet, cross_validated
from pipelines.search.fusion import ranks, reciprocal_rank_fusion
from pipelines.search.index import Candidate
from pipelines.search.text import terms, words
from pipelines.search.typos import Speller

ROOT = Path(__file__).resolve().parents[1]


def shown(kb: KnowledgeBase, question: str) -> list[str]:
    return [a.id for a in kb.search(question).articles]


# --------------------------------------------------------------------------- fusion


def test_ranks_are_one_based_and_a_score_at_the_floor_is_unranked() -> None:
    assert ranks(np.array([0.2, 0.9, 0.0, 0.5]), floor=0.0).tolist() == [3, 1, 0, 2]
    assert ranks(np.array([0.2, 0.9, -0.1])).tolist() == [2, 1, 3]


def test_reciprocal_rank_fusion_prefers_what_both_rankings_like() -> None:
    words = np.array([1, 2, 0])  # article 2 shares no word with the question
    meaning = np.array([3, 1, 2])
    fused = reciprocal_rank_fusion(words, meaning, k=60)
    assert fused.tolist() == pytest.approx([1 / 61 + 1 / 63, 1 / 62 + 1 / 61, 1 / 62])
    # first for one ranking and third for the other loses to second and first
    assert int(np.argmax(fused)) == 1


def test_the_fused_ranking_puts_a_synonym_question_right(kb: KnowledgeBase) -> None:
    # BM25 alone showed nothing: "lower" is not a word of the pay article
    assert shown(kb, "my salary is lower than it should be")[0] == "hr-pay-error"
    assert shown(kb, "my computer has become really laggy")[0] == "it-laptop-slow"


# --------------------------------------------------------------------------- typos


def test_typos_are_corrected_towards_the_articles_words_and_real_words_are_not() -> None:
    speller = Speller(["password", "reset", "connect", "connected", "docking", "dock",
                       "onedrive", "card", "expenses"])
    assert speller.correct(words("passwrd reset")) == (["password", "reset"],
                                                      {"passwrd": "password"})
    # the ending is wrong too: corrected through the stem
    assert speller.correct(["conecting"]) == (["connect"], {"conecting": "connect"})
    assert speller.correct(words("one drive")) == (["onedrive"], {"one drive": "onedrive"})
    # English words are never "corrected" into the articles' words
    assert speller.correct(words("my dog and my car")) == (["my", "dog", "and", "my", "car"], {})
    # too far, or too short to tell
    assert speller.correct(["pswd", "vpm"])[1] == {}


def test_a_typo_with_two_equally_close_words_is_corrected_the_same_in_every_process() -> None:
    """"lgpl" is one edit from both "gpl" and "agpl", each used once. SymSpell lists such ties
    in the order of Python's string hashes, which change from process to process: two instances
    of the bot corrected the same question differently, and the confidence model fitted on the
    development set was not the same twice. Ties go to the more frequent word, then to one with
    the same first letter, then alphabetically."""
    program = textwrap.dedent("""
        from pathlib import Path
        from pipelines.loader import load_config
        config, _ = load_config(Path("examples/helpdesk.yaml"))
        kb = config.knowledge_base("service-desk")
        print(kb.search("an LGPL dependency slipped into the release build").corrections)
    """)
    seen = set()
    for seed in ("1", "2", "3", "4", "5"):  # before: "gpl" under 1 and 2, "agpl" under 3 to 5
        out = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True,
                             cwd=ROOT, env={**os.environ, "PYTHONHASHSEED": seed}, timeout=120)
        assert out.returncode == 0, out.stderr
        seen.add(out.stdout.strip())
    assert seen == {"{'lgpl': 'agpl'}"}
    # the more frequent word wins a tie, whatever its letters
    assert Speller(["gpl", "gpl", "agpl"]).correct(["lgpl"])[0] == ["gpl"]
    # then the one that starts like the typo
    assert Speller(["bgpl", "lgpt"]).correct(["lgpl"])[0] == ["lgpt"]


def test_a_typo_finds_the_article(kb: KnowledgeBase) -> None:
    result = kb.search("expences claim")
    assert result.corrections == {"expences": "expenses"}
    assert result.articles[0].id == "hr-expenses"
    assert shown(kb, "passwrd reset")[0] == "it-password-reset"


# --------------------------------------------------------------------------- negation


def test_negations_and_particles_are_joined_to_their_word_not_dropped() -> None:
    assert terms("no internet at my desk") == ["no~internet", "internet", "desk"]
    assert terms("how do I book a day off") == ["book", "day", "day~off"]
    assert terms("locked out of my account") == ["lock", "lock~out", "account"]
    assert terms("Your laptop won't turn on") == ["laptop", "no~turn", "turn"]
    assert terms("Connect to the office Wi-Fi") == ["connect", "offic", "wi", "fi", "wifi"]
    assert terms("the of and") == []


def test_a_negation_decides_between_two_articles() -> None:
    kb = KnowledgeBase(articles=[
        Article(id="slow", title="The internet is slow", answer="Restart the router.",
                keywords=["slow internet", "internet speed"]),
        Article(id="none", title="No internet at all", answer="Check the cable.",
                keywords=["no internet", "offline"]),
    ]).build()
    always = Abstention(min_confidence=0)
    assert kb.search("no internet", abstention=always).articles[0].id == "none"
    assert kb.search("internet slow", abstention=always).articles[0].id == "slow"


def test_a_day_off_is_annual_leave(kb: KnowledgeBase) -> None:
    assert shown(kb, "how do i book a day off")[0] == "hr-annual-leave"


# --------------------------------------------------------------------------- abstention


def candidate(words: float, words_rank: int, meaning: float, meaning_rank: int, *,
              coverage: float = 0.7, by_example: bool = False) -> Candidate:
    return Candidate("a", words, words_rank, meaning, meaning_rank, 0.0, by_example=by_example,
                     coverage=Coverage(mean=coverage, least=coverage, explained=coverage,
                                       words=3))


def test_confidence_grows_with_each_kind_of_evidence() -> None:
    rule = Abstention()
    other = candidate(0.2, 2, 0.2, 2)

    def sure(best: Candidate) -> float:
        return rule.confidence((best, other))

    base = candidate(0.5, 1, 0.3, 1, coverage=0.5)
    assert sure(candidate(1.5, 1, 0.3, 1, coverage=0.5)) > sure(base)  # more words in common
    assert sure(candidate(0.5, 1, 0.6, 1, coverage=0.5)) > sure(base)  # closer meaning
    assert sure(candidate(0.5, 1, 0.3, 1, coverage=1.0)) > sure(base)  # explains the question
    strong = candidate(2.0, 1, 0.7, 1, coverage=1.0)
    weak = candidate(0.3, 1, 0.15, 1, coverage=0.2)
    assert sure(strong) > 0.9 and sure(weak) < 0.3


def test_select_shows_only_when_sure_enough() -> None:
    rule = Abstention(min_confidence=0.7)
    weak, strong = candidate(0.3, 1, 0.15, 1, coverage=0.2), candidate(2.0, 1, 0.7, 1,
                                                                       coverage=1.0)
    shown, reason, confidence = rule.select((weak, strong), 3)
    assert (shown, reason) == ((), "weak") and confidence is not None and confidence < 0.7
    shown, reason, confidence = rule.select((strong, weak), 3)
    assert shown == (strong, weak) and reason == "confident" and confidence > 0.7
    assert rule.select((), 3) == ((), "no-question", None)
    assert Abstention(min_confidence=0).select((weak,), 3) == ((weak,), "always", None)


def test_a_cosine_from_an_example_question_counts_less() -> None:
    rule = Abstention()
    other = candidate(0.2, 2, 0.2, 2)
    title = candidate(0.5, 1, 0.5, 1)
    # "I left my keys at reception" is close to "I left my laptop on the train"
    example = candidate(0.5, 1, 0.5, 1, by_example=True)
    assert rule.confidence((example, other)) < rule.confidence((title, other))


def test_words_the_article_does_not_explain_lower_the_confidence() -> None:
    coverage = WordCoverage([("The printer is jammed", "printer, paper jam",
                              "Open tray 2 and pull the paper out.")])
    # "broken" and "machine" aside, the question is about coffee: nothing here explains it
    coffee = coverage.explain(words("the coffee machine on the 2nd floor is jammed"), [0]).of(0)
    printer = coverage.explain(words("my printers are jammed with paper"), [0]).of(0)
    assert printer.mean == 1.0 and printer.least == 1.0  # same stems: printers, jammed
    assert coffee.least < 0.3 and coffee.mean < printer.mean
    assert coffee.words == 5 and printer.words == 3  # coffee machine 2nd floor jammed
    assert coverage.explain(words("hi there"), [0]).of(0) == Coverage()


def test_the_coverage_ranking_finds_the_article_a_rare_word_points_at() -> None:
    coverage = WordCoverage([
        ("Harassment and bullying", "harassment, bullying", "Talk to HR in confidence."),
        ("Your team's meetings", "team, meetings, calendar", "Book them in Outlook."),
        ("It",),  # a title of stopwords only: no content word, never explained
    ])
    # no word in common with the first article but "bullied" (same stem as "bullying"); the
    # second has "team", a commoner word, and the meaning of "shouting" is far from both
    explained = coverage.explain(words("my team lead keeps shouting and I feel bullied"),
                                 [0, 1, 2])
    ranking = explained.ranking()
    assert ranking[0] > ranking[1] > ranking[2] == 0
    # only the articles asked about are explained; the others rank nowhere
    some = coverage.explain(words("my team lead keeps shouting and I feel bullied"), [1])
    assert some.ranking()[0] == 0 and some.of(0) is None
    assert some.ranking()[1] == pytest.approx(ranking[1], abs=1e-6)
    assert explained.of(2).mean == 0 and explained.of(0).explained == explained.of(1).explained
    # each explains one word exactly; the rarer one ranks it first: "bullied" outweighs "team"
    rarity = dict(zip(text.content_words(words("my team lead keeps shouting and I feel "
                                                 "bullied")), explained.rarity, strict=True))
    assert rarity["bullied"] > rarity["team"] > 1 and rarity["keeps"] < rarity["bullied"]


def test_the_confidence_model_round_trips_and_refuses_other_features() -> None:
    rng = np.random.default_rng(16)
    features = rng.normal(size=(200, len(FEATURES)))
    answers = (features[:, 0] + 0.5 * features[:, 1] > 0).astype(float)
    model = Model.fit(FEATURES, features, answers)
    assert model.weights[0] > model.weights[1] > 0
    assert Model.from_json(model.to_json()).confidence(features[0]) == pytest.approx(
        model.confidence(features[0]), abs=1e-4)
    other = json.loads(model.to_json())
    other["features"] = ["words"]
    with pytest.raises(ValueError, match="faq_fit_confidence"):
        Model.from_json(json.dumps(other))


def test_the_shipped_model_is_what_the_fit_makes_of_the_development_set() -> None:
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "faq_fit_confidence.py"),
                          "--check"], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "as fitted" in out.stdout


@pytest.mark.parametrize("question", [
    "who won the game last night",  # showed "Resigning" (last) before
    "the fridge in the kitchen is leaking",  # "leaked data"
    "where can i charge my electric car",
    "Laptop fan is loud",  # "laptop", in 11 of the 58 articles
    "hi",
    "?",
    "the car park is full",  # showed "Your mailbox is full" before issue 16
])
def test_no_card_when_one_common_word_matches(kb: KnowledgeBase, question: str) -> None:
    result = kb.search(question)
    assert result.shown == ()
    assert result.reason in ("weak", "no-question")


def test_a_phishing_question_is_not_answered_with_bank_details_alone(kb: KnowledgeBase) -> None:
    found = shown(kb, "weird email from payroll asking me to re-enter my account number")
    assert "it-phishing" in found


def test_the_result_keeps_what_a_record_of_the_answer_needs(kb: KnowledgeBase) -> None:
    result = kb.search("no wifi at my dessk", limit=2)
    assert result.terms == ("no~wifi", "wifi", "desk")
    assert result.corrections == {"dessk": "desk"}
    assert result.reason == "confident"
    assert result.confidence is not None and result.confidence >= model(True).threshold
    assert [m.article.id for m in result.shown] == [c.article_id for c in result.candidates[:2]]
    best = result.shown[0].evidence
    assert best.article_id == "it-wifi-office" and best.words > 0 and -1 <= best.meaning <= 1


# --------------------------------------------------------------------------- example questions


def example_base(questions: list[str]) -> KnowledgeBase:
    return KnowledgeBase(articles=[
        Article(id="lost", title="Your laptop or phone was lost or stolen",
                answer="Call the Service Desk at once.", keywords=["theft"],
                questions=questions),
        Article(id="slow", title="Your computer is running slow",
                answer="Restart it.", keywords=["sluggish"]),
        Article(id="leave", title="Book annual leave", answer="Use the HR portal.",
                keywords=["holiday"]),
    ]).build()


def test_an_example_question_finds_its_article_in_other_words() -> None:
    question = "someone nicked my work mobile on the bus"
    without = example_base([]).search(question).candidates[0]
    found = example_base(["my work phone got nicked on the bus"]).search(question)
    best = found.candidates[0]
    assert best.article_id == "lost" and best.by_example
    assert best.meaning > without.meaning + 0.2
    assert [a.id for a in found.articles][:1] == ["lost"]


def test_example_questions_are_checked_when_the_base_loads() -> None:
    with pytest.raises(ValueError, match="each question is a sentence"):
        Article(id="a", title="A", answer="x", questions=["  "])
    # their words are not a spelling reference: a typo in one is not a word to keep
    base = example_base(["my lapptop was stollen"])
    assert base._index is not None and "stollen" not in base._index.speller.vocabulary


def test_cross_validation_grades_no_question_on_a_base_that_holds_it() -> None:
    held = "someone nicked my work mobile on the bus"
    articles = example_base([held, "lost my phone"]).articles
    seen: dict[str, list[str]] = {}

    def search(base: KnowledgeBase, question: str) -> list[str]:
        seen[question] = base.articles[0].questions
        return [a.id for a in base.search(question).articles]

    labelled = LabelledSet((Labelled(held, ("lost",)), Labelled("lost my phone", ("lost",))),
                           (Labelled("who won the game", ()),))
    rate = cross_validated(KnowledgeBase(articles=articles), labelled, search, folds=2)
    assert rate.questions == 2 and rate.unanswerable == 1
    assert held not in seen[held] and "lost my phone" not in seen["lost my phone"]
    # the other fold's example stays: only what is being graded is left out
    assert seen[held] == ["lost my phone"] and seen["lost my phone"] == [held]


# --------------------------------------------------------------------------- the model


def test_vectors_are_the_ones_wordllama_computes() -> None:
    # in a subprocess: importing wordllama calls logging.basicConfig
    code = textwrap.dedent("""
        import json, sys, numpy as np
        from pathlib import Path
        import wordllama
        from wordllama import WordLlama
        from pipelines.search.semantic import encoder
        texts = ["Reset your password", "my laptop won't turn on", "x"]
        theirs = WordLlama.load(cache_dir=Path(wordllama.__file__).parent,
                                disable_download=True).embed(texts, norm=True)
        ours = encoder().embed(texts)
        print(json.dumps(float(np.abs(theirs - ours).max())))
    """)
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, check=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert json.loads(out.stdout) < 1e-5


def test_reloading_unchanged_articles_does_not_embed_them_again() -> None:
    articles = [Article(id=f"cache-{i}", title=f"Cache test article {i}",
                        answer="Nothing to see.") for i in range(3)]
    first = KnowledgeBase(articles=articles).build()
    # three titles and their words (cache, test, article), unless another test embedded them
    assert first._index is not None and first._index.embedded <= 6
    again = KnowledgeBase(articles=articles).build()
    assert again._index is not None and again._index.embedded == 0
    changed = [*articles[:2], articles[2].model_copy(update={"title": "Changed title"})]
    third = KnowledgeBase(articles=changed).build()
    # the changed title, and at most its two words
    assert third._index is not None and 1 <= third._index.embedded <= 3


NO_NETWORK = """
import socket
def refuse(*args, **kwargs):
    raise OSError("network access during the test: " + repr(args))
socket.socket.connect = refuse
socket.create_connection = refuse
"""


def test_the_search_runs_with_no_network_and_fetches_nothing(tmp_path: Path) -> None:
    (tmp_path / "sitecustomize.py").write_text(NO_NETWORK)
    code = ("from pipelines.loader import load_config\n"
            "config, _ = load_config('examples/helpdesk.yaml')\n"
            "kb = config.knowledge_base('service-desk')\n"
            "print([a.id for a in kb.search('my pc is really slow').articles][0])\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "HF_HUB_OFFLINE": "1",
           "HOME": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "it-laptop-slow"
    # nothing was cached or downloaded under the home directory
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sitecustomize.py"] or not any(
        p.name in (".cache", "wordllama") for p in tmp_path.iterdir())


HIDE_WORDLLAMA = """
import sys
class Hide:
    def find_spec(self, name, path=None, target=None):
        if name == "wordllama" or name.startswith("wordllama."):
            raise ModuleNotFoundError("No module named 'wordllama'")
        return None
sys.meta_path.insert(0, Hide())
"""


def _run_without_model(tmp_path: Path, broken: bool, *args: str) -> subprocess.CompletedProcess:
    if broken:  # a wordllama without its weights, found before the real one
        (tmp_path / "wordllama").mkdir()
        (tmp_path / "wordllama" / "__init__.py").write_text("")
    else:
        (tmp_path / "sitecustomize.py").write_text(HIDE_WORDLLAMA)
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "SWITCHBOARD_CONFIG":
           "examples/helpdesk.yaml", "SWITCHBOARD_DB_PATH": str(tmp_path / "db.sqlite3")}
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True,
                          env=env, timeout=60)


@pytest.mark.parametrize("broken", [False, True], ids=["missing", "broken"])
def test_config_validate_names_a_missing_or_broken_model_package(tmp_path: Path,
                                                                 broken: bool) -> None:
    out = _run_without_model(tmp_path, broken, "-m", "admin", "config", "validate",
                             "examples/helpdesk.yaml")
    assert out.returncode == 1
    assert "Traceback" not in out.stderr
    [problem] = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert problem.startswith("error: examples/helpdesk.yaml > tenant 'service-desk': "
                              "`knowledge_base`: the FAQ search ")
    assert "`wordllama`" in problem and "pip install" in problem
    assert ("is not installed" in problem) != broken
    assert ("reinstall it with `pip install --force-reinstall 'wordllama" in problem) == broken


def test_the_bot_refuses_to_start_without_the_model_package(tmp_path: Path) -> None:
    out = _run_without_model(tmp_path, False, "app.py")
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    assert "switchboard: configuration has 1 problem" in out.stderr
    assert "the FAQ search needs the Python package `wordllama`" in out.stderr


@pytest.mark.parametrize("content", [None, "{not json", '{"features": ["words"]}'],
                         ids=["missing", "not-json", "other-features"])
@pytest.mark.parametrize("which", ["MODEL_FILE", "OUT_OF_SCOPE_MODEL_FILE"])
def test_config_validate_names_a_damaged_confidence_model(tmp_path: Path, which: str,
                                                          content: str | None) -> None:
    model = tmp_path / "confidence_model.json"
    if content is not None:
        model.write_text(content)
    code = ("import runpy, sys\n"
            "from pathlib import Path\n"
            "import pipelines.search.confidence as confidence\n"
            f"confidence.{which} = Path({str(model)!r})\n"
            "sys.argv = ['admin', 'config', 'validate', 'examples/helpdesk.yaml']\n"
            "runpy.run_module('admin', run_name='__main__')\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "Traceback" not in out.stderr
    [problem] = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert problem.startswith("error: examples/helpdesk.yaml > tenant 'service-desk': "
                              "`knowledge_base`: the FAQ search cannot read its confidence "
                              f"model {model}")
    assert "reinstall Switchboard" in problem


def test_the_coverage_is_the_same_whichever_way_the_cosines_are_computed() -> None:
    texts = [(f"Article {i}", f"topic{i}, printer{i % 3}", f"Answer about {w} and paper")
             for i, w in enumerate(["toner", "wifi", "laptop", "leave", "payslip", "badge",
                                    "vpn", "monitor", "teams", "password", "bitlocker", "mfa"])]
    coverage = WordCoverage(texts)
    question = words("my wireless printer has no paper and the laptop battery died")
    qvecs = semantic.encoder().embed(text.content_words(question))
    stems = [text.stemmer().stemWord(w) for w in text.content_words(question)]
    for pool in ([0], [3, 7], list(range(12))):  # small pools copy rows, big ones multiply all
        got = coverage.explain(question, pool).scores
        for col, article in enumerate(pool):
            rows = coverage.rows[article]
            naive = (qvecs @ coverage.vectors[rows].T).max(axis=1)
            naive = np.where([s in coverage.stems[article] for s in stems], 1.0, naive)
            assert np.allclose(got[:, col], naive, atol=1e-6)


def test_loading_the_model_keeps_blas_in_the_calling_thread() -> None:
    """A search's products are small: BLAS worker threads would cost more than the work and
    wait for a core on a busy machine (pipelines/search/semantic.py)."""
    probe = textwrap.dedent("""
        import sys, numpy, threadpoolctl
        sys.path.insert(0, sys.argv[1])
        def blas():
            return [i["num_threads"] for i in threadpoolctl.threadpool_info()
                    if i["user_api"] == "blas"]
        threadpoolctl.threadpool_limits(limits=3, user_api="blas")  # as on a 3-core machine
        before = blas()
        from pipelines.search import semantic
        semantic.encoder()
        print(before, blas())
    """)
    out = subprocess.run([sys.executable, "-c", probe, str(ROOT)], capture_output=True,
                         text=True, timeout=120, check=True)
    assert out.stdout.split() == ["[3]", "[1]"], out.stdout
