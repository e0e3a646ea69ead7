"""`faq report`: what the FAQ answered, what helped, and what to write next.

Reads the FAQ's answer records (pipelines.search.records) from the store the bot is configured
with (SWITCHBOARD_STORE, SWITCHBOARD_DB_PATH, COSMOS_*; SWITCHBOARD_CONFIG for the tenants'
names). Never writes to it. The typed questions it prints are kept in the store as long as the
transcripts; the report prints them to the admin who asked, and logs nothing.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Annotated

import typer

from admin.common import USAGE, fail, open_store, out, run, settings
from admin.sessions import ConfigOption, DbOption, _tenant_names
from pipelines.search.records import TYPE, FaqAnswer

app = typer.Typer(rich_markup_mode=None, no_args_is_help=True,
                  help="What the knowledge base answered, what helped, what to write next.")

# questions printed per group, in the text report
EXAMPLES = 5


@dataclass
class ArticleUse:
    id: str
    title: str
    shown: int = 0
    first: int = 0  # shown first on the card
    solved: int = 0
    more: int = 0  # "I still need help" with this article on the card
    unanswered: int = 0  # the card got no press

    def solved_share(self) -> float:
        return self.solved / self.shown if self.shown else 0.0


@dataclass
class Report:
    """One tenant's (or every tenant's) FAQ answers, summed up."""

    answers: int = 0
    first_at: str | None = None
    last_at: str | None = None
    carded: int = 0
    solved: int = 0
    more: int = 0
    articles: dict[str, ArticleUse] = field(default_factory=dict)
    no_card: list[FaqAnswer] = field(default_factory=list)
    not_helped: list[FaqAnswer] = field(default_factory=list)

    def add(self, answer: FaqAnswer) -> None:
        self.answers += 1
        self.first_at = min(self.first_at or answer.at, answer.at)
        self.last_at = max(self.last_at or answer.at, answer.at)
        if answer.withheld:
            self.no_card.append(answer)
            return
        self.carded += 1
        self.solved += answer.outcome == "solved"
        self.more += answer.outcome == "more"
        if answer.outcome == "more":
            self.not_helped.append(answer)
        for place, shown in enumerate(answer.shown):
            use = self.articles.setdefault(shown.id, ArticleUse(shown.id, shown.title))
            use.shown += 1
            use.first += place == 0
            use.solved += answer.solved_article == shown.id
            use.more += answer.outcome == "more"
            use.unanswered += answer.outcome == "none"


def _since(value: str | None) -> str | None:
    """An ISO date or time, or a number of days back."""
    if value is None:
        return None
    if value.isdigit():
        from datetime import UTC, timedelta

        return (datetime.now(UTC) - timedelta(days=int(value))).isoformat()
    try:
        parsed = datetime.fromisoformat(value) if "T" in value else date.fromisoformat(value)
    except ValueError:
        raise fail(f"--since {value!r} is not a date: use 2026-01-31, 2026-01-31T09:00 or a "
                   f"number of days", USAGE) from None
    return parsed.isoformat()


def _groups(answers: list[FaqAnswer]) -> list[dict[str, object]]:
    """Similar questions together, biggest group first, each with the article that came
    closest most often (what to extend, or where a new article belongs)."""
    from pipelines.search.grouping import group_similar

    out_groups = []
    for members in group_similar([a.question for a in answers]):
        nearest = Counter((a.nearest[0].id, a.nearest[0].title)
                          for a in (answers[i] for i in members) if a.nearest)
        closest = nearest.most_common(1)[0][0] if nearest else None
        out_groups.append({
            "count": len(members),
            "questions": [answers[i].question for i in members],
            "nearestArticle": None if closest is None else {"id": closest[0],
                                                           "title": closest[1]},
        })
    return out_groups


def _as_json(label: str, tenant_id: str | None, report: Report) -> dict[str, object]:
    return {
        "tenant": tenant_id, "name": label, "answers": report.answers,
        "from": report.first_at, "to": report.last_at, "withCard": report.carded,
        "solved": report.solved, "stillNeededHelp": report.more,
        "articles": [
            {"id": u.id, "title": u.title, "shown": u.shown, "shownFirst": u.first,
             "solved": u.solved, "stillNeededHelp": u.more, "noPress": u.unanswered}
            for u in _ordered(report)
        ],
        "noCard": _groups(report.no_card),
        "notHelped": _groups(report.not_helped),
    }


def _ordered(report: Report) -> list[ArticleUse]:
    return sorted(report.articles.values(), key=lambda u: (-u.shown, u.id))


def _print(label: str, report: Report) -> None:
    out(f"{label}: {report.answers} FAQ answer{'s' if report.answers != 1 else ''} "
        f"({_day(report.first_at)} to {_day(report.last_at)}): {report.carded} with a card, "
        f"{report.solved} solved, {report.more} still needed help, "
        f"{len(report.no_card)} without a card")
    out("  Articles (shown / shown first / solved / still needed help / no press, "
        "solved share):")
    if not report.articles:
        out("    (no article was shown)")
    for use in _ordered(report):
        out(f"    {use.id:<28} {use.shown:>4} {use.first:>4} {use.solved:>4} {use.more:>4} "
            f"{use.unanswered:>4}  {use.solved_share():>4.0%}  {use.title}")
    for title, answers in (("Questions that got no card", report.no_card),
                           ("Questions whose card did not help", report.not_helped)):
        out(f"  {title} ({len(answers)}), grouped by similarity:")
        if not answers:
            out("    (none)")
        for group in _groups(answers):
            nearest = group["nearestArticle"]
            near = (f"; closest article: {nearest['id']} ({nearest['title']})"  # type: ignore[index]
                    if nearest else "")
            questions: list[str] = group["questions"]  # type: ignore[assignment]
            out(f"    {group['count']} question{'s' if group['count'] != 1 else ''}{near}")
            for question in questions[:EXAMPLES]:
                out(f"      - {question}")
            if len(questions) > EXAMPLES:
                out(f"      ... and {len(questions) - EXAMPLES} more")


def _day(iso: str | None) -> str:
    return iso[:10] if iso else "-"


@app.command()
def report(
    tenant: Annotated[str | None, typer.Option(help="Only this tenant (its id).")] = None,
    since: Annotated[str | None, typer.Option(
        help="Only answers since this date or time (2026-01-31, 2026-01-31T09:00), or this "
             "many days back.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=100_000,
                                       help="Read at most this many answers, newest first.")]
        = 10_000,
    as_json: Annotated[bool, typer.Option("--json", help="Print it as JSON.")] = False,
    config: ConfigOption = None,
    db: DbOption = None,
) -> None:
    """Per tenant: how often each article was shown and how often it solved the need; the
    questions that got no card, and those whose card did not help, grouped by similarity (the
    articles to write next)."""
    from storage.sessions import SessionStore

    start = _since(since)
    names = _tenant_names(config)
    if tenant is not None and names and tenant not in names:
        raise fail(f"unknown tenant {tenant!r}: the configuration has "
                   f"{', '.join(names)}", USAGE)

    async def read() -> list[FaqAnswer]:
        async with open_store(db) as docs:
            bodies = await SessionStore(docs).records(tenant, TYPE, since=start, limit=limit)
        return [FaqAnswer.model_validate(b) for b in bodies]

    answers = run(read())
    reports: dict[str, Report] = {}
    for answer in answers:
        reports.setdefault(answer.tenant_id, Report()).add(answer)
    order = [t for t in names if t in reports] + sorted(t for t in reports if t not in names)
    if as_json:
        out(json.dumps({"tenants": [_as_json(names.get(t, t), t, reports[t]) for t in order]},
                       indent=2, ensure_ascii=False))
        return
    if not answers:
        where = f" in tenant {tenant!r}" if tenant else ""
        when = f" since {start}" if start else ""
        out(f"No FAQ answers recorded{where}{when}.")
        return
    for index, tenant_id in enumerate(order):
        if index:
            out()
        label = f"{names[tenant_id]} ({tenant_id})" if tenant_id in names else tenant_id
        _print(label, reports[tenant_id])


@app.command()
def learn(
    question: Annotated[str, typer.Argument(
        metavar="QUESTION", help="The question as people asked it (from `faq report`); after "
                                 "`--` when it starts with a dash.")],
    article: Annotated[str | None, typer.Option(
        help="The article that answers it (its id): it becomes one of its example questions.")]
        = None,
    out_of_scope: Annotated[bool, typer.Option(
        "--out-of-scope", help="No article answers it: add it to the out-of-scope list.")]
        = False,
    tenant: Annotated[str | None, typer.Option(
        help="The tenant (its id); needed when several have a knowledge base.")] = None,
    config: ConfigOption = None,
) -> None:
    """Write a question into the tenant's knowledge base: as an example question of the article
    that answers it, or into the out-of-scope list. The file keeps its comments and layout; the
    bot uses it from its next start."""
    from admin.faq_learn import LearnError, lock_for
    from admin.faq_learn import learn as write
    from pipelines.loader import ConfigError, load_config

    if (article is None) == (not out_of_scope):
        raise fail("say where the question goes: --article ID (the article that answers it) "
                   "or --out-of-scope (none does)", USAGE)
    path = Path(config or settings().config_path)
    try:
        with lock_for(path):  # the check and the write, one admin at a time
            try:
                loaded, _ = load_config(path)
            except ConfigError as exc:
                raise fail(f"the configuration has problems; fix them first (`switchboard-admin "
                           f"config validate {path}`): {exc.problems[0]}") from None
            with_kb = [t.id for t in loaded.tenants if t.knowledge_base_files]
            if tenant is None and len(with_kb) != 1:
                raise fail(f"say which tenant with --tenant: {', '.join(with_kb) or 'none'} "
                           "have a knowledge base", USAGE)
            learnt = write(loaded, path, tenant or with_kb[0], question, article_id=article)
    except LearnError as exc:
        raise fail(str(exc)) from None
    except OSError as exc:  # a full disk, a read-only folder, another admin holding the lock
        raise fail(f"nothing written: cannot write the knowledge base beside {path}: {exc}; "
                   "the files are as they were") from None
    name = learnt.file.name
    if not learnt.added:
        out(f"already in {learnt.where} ({name}); nothing written")
        return
    out(f"added to {learnt.where} in {name} ({learnt.count} questions there now); the bot uses "
        "it from its next start")
    if learnt.reformatted:
        out(f"note: the YAML writer changed the layout of other lines of {name} (their content is "
            "the same); check the diff")
