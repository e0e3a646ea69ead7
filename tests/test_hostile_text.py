"""What a person types, at its worst: every text step is linear, every number bounded.

Through the real aiohttp app and adapter (embedded store, local connector) where a person
types; unit tests for the helpers. Each e2e test here failed before its fix: the mention
regex took 8 s on 16,000 `<at>` (and /healthz waited), and a 4,500-digit number at the
feedback stage or after `switch` crashed the turn on Python's int() limit.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bots.guest_input import strip_mentions
from pipelines.actions.base import GuestInput
from pipelines.actions.faq import _typed
from pipelines.actions.feedback import OUT_OF_RANGE, parse_rating, read_feedback
from pipelines.typed_number import whole_number
from tests import teams
from tests.agent_desk import AGENTS, ALICE, person
from tests.harness import BotServer, Chat, settings_for, texts

CONFIG = Path(__file__).parent / "e2e_configs" / "hostile.yaml"
DIGITS = "9" * 4500  # over Python's int() limit of 4,300 digits


@pytest.fixture
async def server(tmp_path):
    server = await BotServer(settings_for(tmp_path, config_path=str(CONFIG))).start()
    yield server
    await server.stop()


def _errors(caplog) -> list[str]:
    return [f"{r.name}: {r.getMessage()}" for r in caplog.records if r.levelno >= logging.ERROR]


async def _healthz_while(server: BotServer, coro) -> tuple[float, float]:
    """(seconds the request took, the longest gap between two answers of /healthz, asked
    again and again while the request ran: a blocked event loop answers nothing)."""
    task = asyncio.ensure_future(coro)
    started = last = time.perf_counter()
    slowest = 0.0
    for _ in range(1000):  # bounded: the request itself is asserted to be quick
        await asyncio.sleep(0.005)
        async with server.http.get(f"{server.url}/healthz") as resp:
            assert resp.status == 200
        now = time.perf_counter()
        slowest, last = max(slowest, now - last), now
        if task.done():
            break
    await task
    return time.perf_counter() - started, slowest


# -- mentions ---------------------------------------------------------------------------


@settings(max_examples=500, deadline=None, derandomize=True)
@given(st.lists(st.sampled_from(["<at>", "</at>", "<", ">", "/", "a", "t", "x", "\n"]),
                max_size=30).map("".join) | st.text(max_size=30))
def test_strip_mentions_is_the_old_regex_in_one_pass(text):
    assert strip_mentions(text) == re.sub(r"<at>.*?</at>", "", text, flags=re.DOTALL)


async def test_16000_unclosed_mentions_neither_stall_the_turn_nor_healthz(server, connector,
                                                                         caplog):
    chat = Chat(teams.TeamsUser.make("Ada"), server, connector)
    await chat.say("hi")
    text = "<at>" * 16_000  # 64 KB; the regex took 8 s
    took, health = await _healthz_while(server, chat.say(text))
    print(f"\n16,000 unclosed mentions: the turn took {took:.3f} s, /healthz waited {health:.3f} s")
    assert took < 2.0 and health < 2.0, (took, health)  # the regex: 8 s, /healthz as long
    # nothing to strip: the answer is the text cut at 10,000 characters, and not a code
    assert "That doesn't look right" in texts(connector.to(chat.user.conversation_id))
    assert not _errors(caplog)


# -- numbers ----------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "low", "high", "expected"), [
    ("3", 1, 5, 3), ("1", 1, 5, 1), ("5", 1, 5, 5), ("0", 1, 5, None), ("6", 1, 5, None),
    ("007", 1, 9, 7), ("0" * 5000 + "4", 1, 5, 4), ("٣", 1, 5, 3), ("²", 1, 5, None),
    ("", 1, 5, None), (" 3", 1, 5, None), ("+3", 1, 5, None), ("-3", 1, 5, None),
    ("3.0", 1, 5, None), ("1_0", 1, 99, None), ("3", 1, 0, None), ("0", 0, 0, 0),
    (DIGITS, 1, 5, None), ("1" + "0" * 10, 1, 10**10, 10**10),
    ("1" + "0" * 10, 1, 10**10 - 1, None),
])
def test_whole_number(text, low, high, expected):
    assert whole_number(text, low, high) == expected


def test_whole_number_reads_a_quarter_megabyte_of_digits_quickly():
    started = time.perf_counter()
    assert whole_number("9" * 256 * 1024, 1, 5) is None
    assert time.perf_counter() - started < 1.0


async def test_a_guest_typing_4500_digits_at_feedback_is_told_the_range(server, connector,
                                                                        caplog):
    chat = Chat(teams.TeamsUser.make("Bo"), server, connector)
    await chat.say("hi")
    assert "How did we do?" in texts(await chat.say("aaa"))
    for typed in (DIGITS, f"{DIGITS} stars", f"{DIGITS}/5 great"):
        shown = texts(await chat.say(typed))
        assert OUT_OF_RANGE in shown and "went wrong" not in shown, shown
    # the card's own rating input is bounded the same way
    shown = texts(await chat.press(None, rating=DIGITS))
    assert OUT_OF_RANGE in shown and "went wrong" not in shown, shown
    assert "Thank you for your feedback!" in texts(await chat.say("4"))
    assert not _errors(caplog)


async def test_an_agent_switching_to_4500_digits_is_told_how(tmp_path, connector, caplog):
    server = await BotServer(settings_for(tmp_path, config_path=str(AGENTS))).start()
    try:
        alice = person(*ALICE)
        for text in ("hi", f"switch {DIGITS}", "switch " + "0" * 5000 + "1"):
            status, _ = await server.post(teams.message(alice, connector.url, text))
            assert status == 201
        said = texts(connector.to(alice.conversation_id))
        assert said.count("Use **switch <number>**") == 2 and "went wrong" not in said
        assert not _errors(caplog)
    finally:
        await server.stop()


# -- an admin's pattern against a guest's text ------------------------------------------


async def test_a_pathological_answer_to_an_admins_pattern_is_refused_quickly(server, connector,
                                                                            caplog):
    """`(a+)+$` backtracks catastrophically: the answer is at most the stage's max_length
    (10,000 here) and the match is cut off after PATTERN_TIMEOUT_SECONDS (0.1 s)."""
    chat = Chat(teams.TeamsUser.make("Cy"), server, connector)
    await chat.say("hi")
    took, health = await _healthz_while(server, chat.say("a" * 9_999 + "!"))
    assert took < 2.0 and health < 2.0, (took, health)
    shown = texts(connector.to(chat.user.conversation_id)[-2:])
    assert "That doesn't look right: please enter a code of letters a." in shown
    assert not _errors(caplog)


# -- the audit: every text step on what a guest types, on a quarter megabyte -------------

QUARTER_MB = 256 * 1024
ADVERSARIAL = {
    "unclosed mentions": "<at>" * (QUARTER_MB // 4),
    "digits then a letter": "1" * QUARTER_MB + "x",
    "a digit, spaces, a letter": "1" + " " * QUARTER_MB + "x",
    "a digit, out, spaces": "1 out" + " " * QUARTER_MB + "x",
    "dotted digits": "1." * (QUARTER_MB // 2),
    "separators": "1" + "-" * QUARTER_MB,
    "punctuation": "'.,!?" * (QUARTER_MB // 5),
}


@pytest.mark.parametrize("case", list(ADVERSARIAL))
def test_every_text_step_on_a_guests_text_is_linear(case):
    """Mentions, typed ratings (regex and number), the FAQ's normalization: each under a
    second on 256 KB (the body limit) of its worst input (milliseconds on an idle machine;
    the quadratic mention regex took minutes on 64,000 `<at>`)."""
    text = ADVERSARIAL[case]
    guest = GuestInput(text=text)
    steps = (strip_mentions, lambda _: read_feedback(guest), parse_rating, lambda _: _typed(guest))
    for step in steps:
        started = time.perf_counter()
        step(text)
        assert time.perf_counter() - started < 1.0, (case, step)
