"""business_hours, faq, set_metadata, condition and feedback through the HTTP endpoint.

The real aiohttp app and adapter, a local connector, both stores (`make_docs`), and
`tests/e2e_configs/more_actions.yaml`: a desk open on weekdays 09:00-17:30 in Paris (UTC+1 in
January). The bot's clock is a FakeClock: these tests never read the wall clock.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from app import SESSIONS
from storage.models import SessionState
from tests import teams
from tests.harness import BotServer, Chat, FakeClock, settings_for, texts

CONFIG = Path(__file__).parent / "e2e_configs" / "more_actions.yaml"


def at(*when: int) -> float:
    return datetime(*when, tzinfo=UTC).timestamp()


WEDNESDAY_11_PARIS = at(2026, 1, 21, 10)
SATURDAY = at(2026, 1, 24, 10)
MONDAY_9_PARIS = at(2026, 1, 26, 8)
NEW_YEARS_DAY = at(2026, 1, 1, 10)  # a Thursday; Friday 2 January is a holiday too


class Desk:
    def __init__(self, server: BotServer, clock: FakeClock, connector) -> None:
        self.server, self.clock, self.connector = server, clock, connector

    def chat(self, name: str) -> Chat:
        return Chat(teams.TeamsUser.make(name), self.server, self.connector)

    async def sessions(self, chat: Chat):
        store = self.server.app[SESSIONS]
        return [s for s in await store.list() if s.conversation_id == chat.user.conversation_id]


async def _desk(tmp_path, make_docs, connector, **settings):
    clock = FakeClock(WEDNESDAY_11_PARIS)
    server = await BotServer(settings_for(tmp_path, config_path=str(CONFIG), **settings),
                             docs=make_docs(), clock=clock).start()
    return Desk(server, clock, connector)


@pytest.fixture
async def desk(tmp_path, make_docs, connector):
    desk = await _desk(tmp_path, make_docs, connector)
    yield desk
    await desk.server.stop()


# --------------------------------------------------------------------------- business_hours


async def test_closed_at_the_weekend_says_when_it_opens_then_opens(desk: Desk) -> None:
    desk.clock.now = SATURDAY
    chat = desk.chat("Wendy")
    shown = texts(await chat.say("hi"))
    assert "The desk is closed." in shown
    assert "We open on Monday 26 January at 09:00 (Europe/Paris)." in shown
    assert "(2026-01-26T09:00:00+01:00)" in shown
    assert "Today:" not in shown
    [closed] = await desk.sessions(chat)
    assert closed.state == SessionState.ENDED
    assert closed.metadata["Tenant.NextOpen"] == "Monday 26 January at 09:00 (Europe/Paris)"

    # exactly at opening time, the desk is open
    desk.clock.now = MONDAY_9_PARIS
    assert "What do you need, Wendy?" in texts(await chat.say("hi again"))


async def test_closed_on_consecutive_holidays_skips_them(desk: Desk) -> None:
    desk.clock.now = NEW_YEARS_DAY
    shown = texts(await desk.chat("Noel").say("hi"))
    assert "Today: New Year's Day." in shown
    # Friday 2 January is a holiday too, then the weekend
    assert "We open on Monday 5 January at 09:00 (Europe/Paris)." in shown


async def test_one_second_before_closing_is_open_and_closing_time_is_closed(desk: Desk) -> None:
    desk.clock.now = at(2026, 1, 21, 16, 29, 59)  # 17:29:59 in Paris
    assert "What do you need, Early?" in texts(await desk.chat("Early").say("hi"))
    desk.clock.now = at(2026, 1, 21, 16, 30)  # 17:30
    shown = texts(await desk.chat("Late").say("hi"))
    assert "We open on Thursday 22 January at 09:00 (Europe/Paris)." in shown


# --------------------------------------------------------------------------- faq


async def test_faq_solved_by_typing_yes_ends_the_chat_as_deflected(desk: Desk) -> None:
    chat = desk.chat("Pat")
    await chat.say("hi")
    shown = texts(await chat.answer("i cant log in, password expired"))
    assert "Reset your password" in shown and "self-service portal" in shown
    assert "Connect to the VPN" not in shown
    shown = texts(await chat.say("yes"))
    assert "Glad that helped, Pat!" in shown
    [session] = await desk.sessions(chat)
    assert session.state == SessionState.DEFLECTED
    assert session.metadata["Faq.ArticleId"] == "password"
    assert session.metadata["Faq.ArticleTitle"] == "Reset your password"


async def test_faq_still_need_help_then_condition_then_feedback(desk: Desk) -> None:
    chat = desk.chat("Vic")
    await chat.say("hi")
    shown = texts(await chat.answer("the vpn at home"))
    assert "Connect to the VPN" in shown
    # something that is neither answer: it says what to do, and shows the articles again
    shown = texts(await chat.say("hmm"))
    assert "Did one of these articles solve it?" in shown and "Connect to the VPN" in shown

    shown = texts(await chat.press("I still need help"))
    # set_metadata then condition: the FAQ was tried (Faq.Suggested) and the priority is 2
    assert "The articles did not help: someone will call you." in shown
    assert "Rate us, Vic: 1 (poor) to 5 (excellent)" in shown

    shown = texts(await chat.say("9"))
    assert "A rating goes from 1 (poor) to 5 (excellent)" in shown
    assert "Rate us, Vic" in shown
    shown = texts(await chat.press("4", comment="Fast, thanks"))
    assert "Thank you for your feedback!" in shown
    assert "Rated 4." in shown and "Comment: Fast, thanks" in shown

    [session] = await desk.sessions(chat)
    assert session.state == SessionState.RESOLVED
    assert session.metadata["Survey.Rating"] == 4
    assert session.metadata["Survey.Comment"] == "Fast, thanks"
    assert session.metadata["Answers.Source"] == "chat"
    assert session.metadata["Answers.Priority"] == 2
    assert session.metadata["Faq.Suggested"] == "vpn"
    assert "Faq.ArticleId" not in session.metadata


async def test_faq_and_feedback_with_action_execute(tmp_path, make_docs, connector) -> None:
    desk = await _desk(tmp_path, make_docs, connector, use_execute=True)
    try:
        chat = desk.chat("Exe")
        await chat.say("hi")
        await chat.answer("paper jam")
        assert teams.find_action(chat.last_card(), "This solved it")["type"] == "Action.Execute"
        shown = texts(await chat.press("This solved it"))
        assert "Glad that helped, Exe!" in shown
        # the pressed card is replaced by one that shows the choice
        assert chat.statuses[-1] == 200
        assert "A printer is jammed" in str(chat.last_body["value"])
        assert "actions" not in chat.last_body["value"]
        [session] = await desk.sessions(chat)
        assert session.state == SessionState.DEFLECTED
    finally:
        await desk.server.stop()


# -------------------------------------------------------------- set_metadata, condition


async def test_no_faq_match_takes_the_otherwise_branch_and_guest_text_stays_data(
    desk: Desk,
) -> None:
    chat = desk.chat("Quinn")
    await chat.say("hi")
    shown = texts(await chat.answer("${Guest.Name} needs a new chair"))
    assert "These articles may answer" not in shown
    assert "Normal path. Hi Quinn." in shown
    assert "You said: ${Guest.Name} needs a new chair (source chat)" in shown
    shown = texts(await chat.say("5 - great"))
    assert "Rated 5." in shown and "Comment: great" in shown
    [session] = await desk.sessions(chat)
    assert session.metadata["Answers.Echo"] == "${Guest.Name} needs a new chair"
    assert session.metadata["Guest.Greeting"] == "Hi Quinn"
    assert "Faq.Suggested" not in session.metadata


async def test_the_urgent_branch_and_skipping_feedback(desk: Desk) -> None:
    chat = desk.chat("Ursula")
    await chat.say("hi")
    shown = texts(await chat.answer("URGENT: the server room is flooding"))
    assert "Urgent path. Hi Ursula." in shown
    shown = texts(await chat.press("Skip"))
    assert "No rating: thanks anyway." in shown
    [session] = await desk.sessions(chat)
    assert session.state == SessionState.RESOLVED
    assert "Survey.Rating" not in session.metadata
