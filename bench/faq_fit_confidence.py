"""Fit the FAQ's confidence model on the development set, and show how to choose its threshold.

    .venv/bin/python bench/faq_fit_confidence.py           # write the model, print the table
    .venv/bin/python bench/faq_fit_confidence.py --check   # exit 1 if the shipped file differs

Each development question (tests/faq_dev_set.yaml) is searched on a base that has not seen it
(5 folds, as the hit-rate bench measures it: pipelines.search.evaluation.fold_bases). Its best
candidate's evidence (pipelines.search.confidence.FEATURES) is one row: an answer (1) when the
question has an answer and the ranking has it in its first three, no answer (0) when the base
cannot answer it; a question whose answer the ranking misses teaches nothing about staying quiet
and is left out. The model is an L2-penalised logistic regression (`L2`), written to
pipelines/search/confidence_model.json.

The tables: each fold scored by a model fitted on the other four, at several thresholds, for
top-1, top-3 and the unanswerable questions shown a card, as the faq stage would show them; then
the same with the development set by author (four authors wrote it: `AUTHORS`; each author's
questions on a base without them as example questions, scored by a model fitted on the other
authors' questions), the closer likeness of questions nobody tuned on. The
features and the default threshold (pipelines.search.abstention.MIN_CONFIDENCE) were chosen
from these. The test sets play no part here.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipelines.knowledge import Article, KnowledgeBase  # noqa: E402
from pipelines.loader import load_config  # noqa: E402
from pipelines.search import confidence  # noqa: E402
from pipelines.search.abstention import Abstention  # noqa: E402
from pipelines.search.confidence import FEATURES, MODEL_FILE, Model, evidence  # noqa: E402
from pipelines.search.evaluation import (  # noqa: E402
    Labelled,
    LabelledSet,
    fold_bases,
    without_examples,
)
from pipelines.search.index import Candidate  # noqa: E402
from pipelines.search.semantic import ModelUnavailable  # noqa: E402

CONFIG = ROOT / "examples" / "helpdesk.yaml"
DEV = ROOT / "tests" / "faq_dev_set.yaml"
L2 = 1.0
THRESHOLDS = (0.5, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9)

# who wrote each block of tests/faq_dev_set.yaml (its "# ---- " lines), by the block's first words
AUTHORS = {"the original set": 1, "added in issue 16, first round": 1,
           "the retired first test set": 2, "by a third author": 3, "by a fourth author": 4}

Row = tuple[int, Labelled, tuple[Candidate, ...]]


def _articles() -> list[Article]:
    config, _ = load_config(CONFIG)
    knowledge = config.knowledge_base("service-desk")
    assert knowledge is not None
    return knowledge.articles


def _searched(fold: int, part: LabelledSet, base: KnowledgeBase) -> list[Row]:
    always = Abstention(min_confidence=0)
    return [(fold, item, base.search(item.question, abstention=always).candidates)
            for item in (*part.answerable, *part.unanswerable)]


def rows() -> list[Row]:
    """(fold, question, its candidates) for every development question."""
    labelled = LabelledSet.load(DEV)
    return [row for fold, (part, base) in enumerate(fold_bases(_articles(), labelled))
            for row in _searched(fold, part, base)]


def authors() -> dict[str, int]:
    """Each development question's author (AUTHORS), from the block it is in."""
    out: dict[str, int] = {}
    author = 0
    for line in DEV.read_text("utf-8").splitlines():
        if line.strip().startswith("# ---- "):
            block = line.strip().removeprefix("# ---- ")
            author = next(a for start, a in AUTHORS.items() if block.startswith(start))
        elif line.startswith("  - {"):
            out[str(yaml.safe_load(line.strip()[2:])["q"])] = author
    return out


def by_author() -> list[Row]:
    """The development set by author, each author's questions on a base without them."""
    labelled = LabelledSet.load(DEV)
    wrote = authors()
    articles = _articles()
    out: list[Row] = []
    for author in sorted(set(AUTHORS.values())):
        part = LabelledSet(
            tuple(i for i in labelled.answerable if wrote[i.question] == author),
            tuple(i for i in labelled.unanswerable if wrote[i.question] == author))
        out.extend(_searched(author, part, without_examples(articles, part)))
    return out


def training(data: list[Row]) -> tuple[np.ndarray, np.ndarray]:
    features, answers = [], []
    for _, item, candidates in data:
        if not candidates:
            continue
        found = {c.article_id for c in candidates[:3]} & set(item.answers)
        if item.answers and not found:
            continue
        features.append(evidence(candidates))
        answers.append(1.0 if item.answers else 0.0)
    return np.asarray(features), np.asarray(answers)


def fit(data: list[Row]) -> Model:
    return Model.fit(*training(data), l2=L2)


def table(data: list[Row]) -> None:
    folds = sorted({fold for fold, _, _ in data})
    scored: list[tuple[Labelled, tuple[Candidate, ...], float]] = []
    for fold in folds:
        model = fit([r for r in data if r[0] != fold])
        scored.extend((item, candidates,
                       model.confidence(evidence(candidates)) if candidates else 0.0)
                      for f, item, candidates in data if f == fold)
    print("threshold  top-1  top-3  top-3 less the carded share  unanswerable shown a card "
          "(each part scored by a model fitted on the others)")
    # the card's articles once the best is shown; whether it is shown is the fold's model's call
    always = Abstention(min_confidence=0)
    for threshold in THRESHOLDS:
        top1 = top3 = answerable = carded = unanswerable = 0
        for item, candidates, sure in scored:
            shown: list[str] = []
            if candidates and sure >= threshold:
                shown = [c.article_id for c in always.select(candidates, 3)[0]]
            if item.answers:
                answerable += 1
                top1 += bool(shown) and shown[0] in item.answers
                top3 += bool(set(shown) & set(item.answers))
            else:
                unanswerable += 1
                carded += bool(shown)
        print(f"  {threshold:<8} {top1 / answerable:.3f}  {top3 / answerable:.3f}  "
              f"{top3 / answerable - carded / unanswerable:.3f}                       "
              f"{carded} of {unanswerable} ({carded / unanswerable:.1%})")


def main(check: bool) -> int:
    try:
        confidence.model()
    except ModelUnavailable:  # missing, or fitted on other features: this script makes it
        placeholder = Model(mean=(0.0,) * len(FEATURES), scale=(1.0,) * len(FEATURES),
                            weights=(0.0,) * len(FEATURES), bias=0.0)
        confidence.model = lambda: placeholder  # the rows are searched with abstention off
    data = rows()
    shipped = fit(data).to_json(
        fitted_on=f"tests/faq_dev_set.yaml, cross-validated (5 folds); {len(training(data)[1])} "
                  f"questions; by bench/faq_fit_confidence.py", l2=L2)
    if check:
        same = MODEL_FILE.exists() and MODEL_FILE.read_text("utf-8") == shipped
        verdict = "as fitted" if same else "differs from the fit: run the script"
        print(f"{MODEL_FILE.name}: {verdict}")
        return 0 if same else 1
    MODEL_FILE.write_text(shipped, "utf-8")
    print(f"wrote {MODEL_FILE.relative_to(ROOT)}")
    print("\ncross-validated, 5 folds")
    table(data)
    print(f"\nby author ({len(set(AUTHORS.values()))}: each scored by a model fitted on "
          f"the others)")
    table(by_author())
    return 0


if __name__ == "__main__":
    sys.exit(main(check="--check" in sys.argv[1:]))
