"""Learning from use: every FAQ answer is recorded through the real bot (the example help desk,
the real endpoint and adapter, both stores), what the guest pressed replaces it, the typed
question is never logged, and `switchboard-admin faq report` (a subprocess, as an admin runs it)
sums them up after a scripted set of guests."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from app import SESSIONS
from pipelines.search.confidence import model
from storage.embedded import EmbeddedStore
from tests import teams
from tests.conftest import WEDNESDAY_10_UTC
from tests.harness import BotServer, Chat, FakeClock, settings_for, texts
from tests.test_cli import EXAMPLE, cli

FAQ_PROMPT = "These articles may answer your question:"
SOLVED = "my computer has become really laggy"  # it-laptop-slow first
MORE = "i forgot my password"  # it-password-reset first
NO_PRESS = "how do i set up an automatic reply while i'm on holiday"
NO_CARD = ["who won the game last night", "who won the football match on saturday",
           "football results from last night", "where do i park my bicycle"]


async def ask(chat: Chat, question: str) -> str:
    await chat.say("hi")
    return texts(await chat.answer(question))


async def script(make_chat, clock: FakeClock | None = None) -> None:
    """Six guests: one solved, one still needed help, one never pressed, four got no card."""
    solved = make_chat("Grace Hopper")
    assert FAQ_PROMPT in await ask(solved, SOLVED)
    if clock is not None:
        clock.advance(30)
    assert "Glad that helped" in texts(await solved.press("This solved it"))
    more = make_chat("Alan Turing")
    assert FAQ_PROMPT in await ask(more, MORE)
    await more.press("I still need help")
    assert FAQ_PROMPT in await ask(make_chat("Ada Lovelace"), NO_PRESS)
    for index, question in enumerate(NO_CARD):
        if clock is not None:
            clock.advance(60)
        assert FAQ_PROMPT not in await ask(make_chat(f"Guest {index}"), question)


async def test_every_answer_is_recorded_and_the_press_replaces_it(bot, new_chat) -> None:
    await script(new_chat)
    store = bot.app[SESSIONS]
    records = await store.records(None, "faq_answer")
    assert len(records) == 3 + len(NO_CARD)
    by_question = {r["question"]: r for r in records}
    solved = by_question[SOLVED]
    assert solved["type"] == "faq_answer" and solved["tenantId"] == "service-desk"
    assert solved["stage"] == "faq" and solved["pipelineId"] == "triage"
    assert solved["reason"] == "confident" and model(True).threshold <= solved["confidence"] <= 1
    assert solved["shown"][0]["id"] == "it-laptop-slow"
    assert solved["shown"][0]["title"] == "Your computer is running slow"
    assert {"words", "wordsRank", "meaning", "meaningRank", "fused"} <= set(solved["shown"][0])
    assert solved["outcome"] == "solved" and solved["solvedArticle"] == "it-laptop-slow"
    assert solved["at"] == "2026-01-21T10:00:00.000+00:00" and solved["outcomeAt"]
    assert solved["sessionId"]
    assert by_question[MORE]["outcome"] == "more" and by_question[MORE]["solvedArticle"] is None
    assert by_question[NO_PRESS]["outcome"] == "none" and by_question[NO_PRESS]["shown"]
    for question in NO_CARD:
        withheld = by_question[question]
        assert withheld["shown"] == [] and withheld["reason"] == "weak"
        assert 0 <= withheld["confidence"] < model(True).threshold
        assert len(withheld["nearest"]) == 3 and withheld["outcome"] == "none"
    # one record per answer, replaced by the press, never doubled
    assert len({r["sessionId"] for r in records}) == len(records)
    assert await store.records("hr", "faq_answer") == []
    assert len(await store.records("service-desk", "faq_answer")) == len(records)


async def test_the_typed_question_is_never_logged(bot, new_chat, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    secret = "my laptop is really slow since the quokka sticker went on"
    chat = new_chat("Quiet Guest")
    assert FAQ_PROMPT in await ask(chat, secret)
    texts(await chat.say("still need help"))
    assert caplog.records, "the bot logs its turns: nothing captured means no test"
    for record in caplog.records:
        logged = record.getMessage() + " " + " ".join(map(str, record.__dict__.values()))
        assert "quokka" not in logged, record.__dict__
    [kept] = [r for r in await bot.app[SESSIONS].records(None, "faq_answer")
              if r["question"] == secret]
    assert kept["outcome"] == "more"


@pytest.fixture
async def recorded(tmp_path: Path, connector) -> Path:
    """An embedded store file after the scripted guests went through the example bot."""
    db = tmp_path / "bot.sqlite3"
    clock = FakeClock(WEDNESDAY_10_UTC)
    server = await BotServer(settings_for(tmp_path), docs=EmbeddedStore(db),
                             clock=clock).start()
    try:
        await script(lambda name: Chat(teams.TeamsUser.make(name), server, connector), clock)
    finally:
        await server.stop()
    return db


def report(db: Path, *args: str):
    return cli("faq", "report", "--db", str(db), "--config", str(EXAMPLE), *args)


async def test_faq_report_after_a_scripted_set_of_guests(recorded: Path) -> None:
    result = report(recorded)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == ("Service Desk (service-desk): 7 FAQ answers (2026-01-21 to 2026-01-21): "
                        "3 with a card, 1 solved, 1 still needed help, 4 without a card")
    slow = next(line for line in lines if line.strip().startswith("it-laptop-slow"))
    assert slow.split()[1:6] == ["1", "1", "1", "0", "0"] and "100%" in slow
    reset = next(line for line in lines if line.strip().startswith("it-password-reset"))
    assert reset.split()[1:6] == ["1", "1", "0", "1", "0"]
    ooo = next(line for line in lines if line.strip().startswith("it-out-of-office"))
    assert ooo.split()[1:6] == ["1", "1", "0", "0", "1"]
    no_card = lines.index("  Questions that got no card (4), grouped by similarity:")
    not_helped = lines.index("  Questions whose card did not help (1), grouped by similarity:")
    section = "\n".join(lines[no_card:not_helped])
    assert all(f"      - {q}" in section for q in NO_CARD)
    # the three football questions are one need: one group, listed first
    assert lines[no_card + 1].startswith("    3 questions")
    assert {lines[no_card + 2], lines[no_card + 3], lines[no_card + 4]} == {
        f"      - {q}" for q in NO_CARD[:3]}
    assert f"      - {MORE}" in lines[not_helped:]

    as_json = json.loads(report(recorded, "--json", "--tenant", "service-desk").stdout)
    [desk] = as_json["tenants"]
    assert desk["answers"] == 7 and desk["solved"] == 1 and desk["stillNeededHelp"] == 1
    assert [g["count"] for g in desk["noCard"]] == [3, 1]
    assert desk["notHelped"][0]["questions"] == [MORE]
    assert desk["notHelped"][0]["nearestArticle"]["id"] == "it-password-reset"
    slow_json = next(a for a in desk["articles"] if a["id"] == "it-laptop-slow")
    assert slow_json == {"id": "it-laptop-slow", "title": "Your computer is running slow",
                         "shown": 1, "shownFirst": 1, "solved": 1, "stillNeededHelp": 0,
                         "noPress": 0}


async def test_faq_report_filters_and_mistakes(recorded: Path, tmp_path: Path) -> None:
    later = report(recorded, "--since", "2026-01-22")
    assert later.returncode == 0 and later.stdout == (
        "No FAQ answers recorded since 2026-01-22.\n")
    hr = report(recorded, "--tenant", "hr")
    assert hr.returncode == 0 and hr.stdout == "No FAQ answers recorded in tenant 'hr'.\n"
    bad = report(recorded, "--since", "last tuesday")
    assert bad.returncode == 2 and "--since 'last tuesday' is not a date" in bad.stderr
    unknown = report(recorded, "--tenant", "finance")
    assert unknown.returncode == 2 and "unknown tenant 'finance'" in unknown.stderr
    missing = report(tmp_path / "nowhere.sqlite3")
    assert missing.returncode == 1 and "no embedded store at" in missing.stderr


def test_grouping_puts_one_need_together_whatever_the_order() -> None:
    from itertools import permutations

    from pipelines.search.grouping import group_similar

    # "who won the game" and "who won the football match" are only 0.32 apart: the third
    # question joins them, in whichever order they come
    for order in permutations(NO_CARD):
        groups = [sorted(order[i] for i in g) for g in group_similar(list(order))]
        assert groups == [sorted(NO_CARD[:3]), [NO_CARD[3]]], order


def test_faq_report_answers_help() -> None:
    for command in (["faq"], ["faq", "report"]):
        result = cli(*command, "--help")
        assert result.returncode == 0, result.stderr
        assert "Usage: switchboard-admin faq" in result.stdout
    assert "grouped by similarity" in cli("faq", "report", "--help").stdout
