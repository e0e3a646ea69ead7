"""How well the FAQ finds the right article: hit rate top-1 and top-3.

    .venv/bin/python bench/faq_hit_rate.py [-v]

The Service Desk's knowledge base of the example (`examples/kb/*.yaml`, loaded and indexed by
the real config loader) against the labelled questions of `tests/faq_questions.yaml` (each as
an employee would type it -> the article that answers it). Prints the figures for the ranking
alone and for what the `faq` stage shows with its default settings, and with -v each miss.
The figures are in docs/faq.md; tests/test_faq_hit_rate.py asserts floors under them.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipelines.actions.faq import DEFAULT_MIN_SCORE, RELATED_SHARE  # noqa: E402
from pipelines.knowledge import KnowledgeBase, hit_rate  # noqa: E402
from pipelines.loader import load_config  # noqa: E402

CONFIG = ROOT / "examples" / "helpdesk.yaml"
QUESTIONS = ROOT / "tests" / "faq_questions.yaml"


def main(verbose: bool = False) -> None:
    config, _ = load_config(CONFIG)
    knowledge = config.knowledge_base("service-desk")
    assert knowledge is not None
    labelled = yaml.safe_load(QUESTIONS.read_text(encoding="utf-8"))
    questions, unanswerable = labelled["questions"], labelled["no_answer"]

    started = time.perf_counter()
    KnowledgeBase(articles=knowledge.articles).build()
    build_ms = (time.perf_counter() - started) * 1000
    started = time.perf_counter()
    for question in questions:
        knowledge.search(question)
    query_ms = (time.perf_counter() - started) * 1000 / len(questions)

    ranking = hit_rate(knowledge, questions, unanswerable)
    shown = hit_rate(knowledge, questions, unanswerable, min_score=DEFAULT_MIN_SCORE,
                     share=RELATED_SHARE)
    print(f"knowledge base: {len(knowledge.articles)} articles (examples/kb); "
          f"{ranking.questions} labelled questions, {ranking.unanswerable} it cannot answer")
    print(f"index built in {build_ms:.1f} ms; a search takes {query_ms:.2f} ms")
    print()
    print(f"{'':44} {'top-1':>6} {'top-3':>6} {'shown':>6} {'no-answer shown':>16}")
    for label, rate in (
        ("ranking alone (bm25s, no threshold)", ranking),
        (f"as the faq stage shows it (min_score {DEFAULT_MIN_SCORE})", shown),
    ):
        print(f"{label:44} {rate.top1:6.3f} {rate.top3:6.3f} {rate.shown_per_question:6.2f} "
              f"{rate.unanswerable_shown:>7} of {rate.unanswerable}")
    if verbose:
        print()
        print("misses (not first), as shown:")
        for question, expected, found in shown.misses:
            print(f"  {question!r}: expected {expected}, got {', '.join(found) or 'nothing'}")


if __name__ == "__main__":
    main(verbose="-v" in sys.argv[1:])
