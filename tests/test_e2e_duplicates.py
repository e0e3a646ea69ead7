"""Every activity delivered twice (one after the other, at once, interleaved): handled once."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from app import SESSIONS
from tests import teams
from tests.conftest import WEDNESDAY_10_UTC
from tests.harness import BotServer, Chat, FakeClock, settings_for

CONFIGS = Path(__file__).parent / "e2e_configs"


async def seed_scenario(chat: Chat) -> list[str]:
    """The seed's scenario; what the guest saw, message by message."""
    seen = []
    for step in (
        lambda: chat.install(),
        lambda: chat.answer("My payslip is wrong"),
        lambda: chat.press("I still need help"),
        lambda: chat.press("HR"),
        lambda: chat.answer("E10001"),
        lambda: chat.say("help"),
        lambda: chat.answer("Payroll"),
        lambda: chat.press("Send", rating="4"),
    ):
        seen += [_HEX.sub("<id>", s.all_text()) for s in await step()]
    return seen


_HEX = re.compile(r"\b[0-9a-f]{32}\b")


async def store_snapshot(server: BotServer, chat: Chat) -> list[tuple]:
    store = server.app[SESSIONS]
    out = []
    for session in sorted(await store.list(limit=1000), key=lambda s: s.created_at):
        if session.conversation_id != chat.user.conversation_id:
            continue
        lines = await store.transcript(session.tenant_id, session.id)
        out.append((session.tenant_id, session.state.value, len(lines),
                    [e.seq for e in lines] == list(range(len(lines)))))
    return out


@pytest.mark.parametrize("replay", ["twice", "concurrent", "interleaved"])
async def test_the_seed_scenario_with_every_activity_delivered_twice(
    tmp_path, make_docs, connector, replay
):
    server = await BotServer(settings_for(tmp_path), docs=make_docs(),
                             clock=FakeClock(WEDNESDAY_10_UTC)).start()
    try:
        once = Chat(teams.TeamsUser.make("Once"), server, connector)
        expected = await seed_scenario(once)
        doubled = Chat(teams.TeamsUser.make("Once"), server, connector, replay=replay)
        assert await seed_scenario(doubled) == expected
        assert await store_snapshot(server, doubled) == await store_snapshot(server, once)
        assert [t for t in await store_snapshot(server, doubled)] == [
            ("service-desk", "transferred", 7, True), ("hr", "resolved", 11, True)]
    finally:
        await server.stop()


@pytest.mark.parametrize("replay", ["twice", "concurrent"])
async def test_agent_activities_delivered_twice_are_handled_once(
    tmp_path, make_docs, connector, replay
):
    clock = FakeClock()
    server = await BotServer(
        settings_for(tmp_path, config_path=str(CONFIGS / "agents.yaml")), docs=make_docs(),
        clock=clock,
    ).start()
    try:
        alice = Chat(teams.TeamsUser("Alice", "aaaaaaaa-0000-0000-0000-000000000001",
                                     "a:1alice"), server, connector, replay=replay)
        guest = Chat(teams.TeamsUser.make("Gus"), server, connector, replay=replay)
        await alice.install()
        await guest.say("hi")
        await guest.say("Laptop will not boot")
        await server.fire_timers()
        offer = [s for s in connector.to("a:1alice") if "New chat waiting" in s.all_text()]
        assert len(offer) == 1
        await alice.send(teams.execute(alice.user, connector.url, offer[0].card, {}, "Accept"))
        guest_saw = [s.all_text() for s in guest._new()]
        assert sum("You're now chatting with Alice" in t for t in guest_saw) == 1
        await alice.say("Is it plugged in?")
        assert [s.all_text() for s in guest._new()] == ["Alice: \nIs it plugged in?"]
        await guest.say("Yes it is")
        relayed = [s.all_text() for s in connector.to("a:1alice") if "Yes it is" in s.all_text()]
        assert relayed == ["Gus: \nYes it is"]
        session = await server.app[SESSIONS].live(guest.user.conversation_id)
        lines = await server.app[SESSIONS].transcript(session.tenant_id, session.id)
        texts = [e.text for e in lines if e.text in ("Is it plugged in?", "Yes it is")]
        assert texts == ["Is it plugged in?", "Yes it is"]
    finally:
        await server.stop()
