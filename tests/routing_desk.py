"""The routing config's bot and its people, shared by the skills/tiers/consult tests
(tests/e2e_configs/routing.yaml)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

from app import DOCS
from storage.layout import AGENTS as AGENTS_CONTAINER
from tests import teams
from tests.agent_desk import Desk
from tests.harness import BotServer, Chat, FakeClock, settings_for, texts

ROUTING = Path(__file__).parent / "e2e_configs" / "routing.yaml"
ERIN = ("Erin", "aaaaaaaa-0000-0000-0000-000000000003")
SIX_KEYS = [f"Session.Transferred{side}.{what}" for side in ("From", "To")
            for what in ("SessionId", "TenantId", "TenantName")]


class Routes(Desk):
    """The routing config's bot, restartable (a new process on the same store)."""

    def __init__(self, server: BotServer, connector, clock: FakeClock, make_docs) -> None:
        super().__init__(server, connector, clock)
        self.make_docs = make_docs
        self.guests: list[Chat] = []

    def guest(self, name: str = "Gina Guest") -> Chat:
        chat = super().guest(name)
        self.guests.append(chat)
        return chat

    async def restart(self) -> None:
        """The same instance, a new process: nothing in memory survives, the store does."""
        settings = self.server.settings
        await self.server.stop()
        self.server = await BotServer(settings, docs=self.make_docs(), clock=self.clock).start()
        for chat in [*self.agents.values(), *self.guests]:
            chat.bot = self.server

    def consult_offers(self, chat: Chat) -> list:
        return [s for s in self.connector.to(chat.user.conversation_id)
                if s.how != "update" and "asks you to consult" in s.all_text()]

    async def press(self, chat: Chat, sent, title: str = "Accept") -> dict:
        activity = teams.execute(chat.user, self.connector.url, sent.card, {}, title)
        status, body = await self.server.post(activity)
        assert status == 200, (status, body)
        return body

    async def record(self, who: tuple[str, str]) -> dict:
        doc = await self.server.app[DOCS].read(AGENTS_CONTAINER, who[1].casefold(), "agent")
        assert doc is not None
        return doc.body

    def last_update(self, chat: Chat, offer) -> str:
        updates = [s for s in self.updates(chat) if s.activity_id == offer.activity_id]
        return updates[-1].all_text() if updates else ""


async def running(tmp_path, make_docs, connector) -> AsyncIterator[Routes]:
    """The bot on the routing config, a fake clock, its agents' helpers (a fixture's body)."""
    clock = FakeClock()
    settings = settings_for(tmp_path, config_path=str(ROUTING), instance_name="routing-one")
    desk = Routes(await BotServer(settings, docs=make_docs(), clock=clock).start(), connector,
                  clock, make_docs)
    yield desk
    await desk.server.stop()


async def arrive(routes: Routes, language: str, topic: str, problem: str = "VPN drops hourly",
                 name: str = "Gina Guest") -> Chat:
    guest = routes.guest(name)
    assert "Which language" in texts(await guest.say("hi"))
    assert "What's wrong?" in texts(await guest.say(language))
    assert "What is it about?" in texts(await guest.say(problem))
    sent = await guest.press(topic)
    assert "Connecting you with someone from IT" in texts(sent)
    return guest


async def connected(routes: Routes, agent: Chat, guest: Chat) -> None:
    """`agent` takes the guest's chat (offered to them in the last round)."""
    await routes.server.fire_timers()
    body = await routes.press(agent, routes.offers(agent)[-1])
    assert "You're chatting with" in str(body["value"]), body
    guest._new()
    agent._new()
