"""Agents and guests of tests/e2e_configs/agents.yaml, shared by the live-agent tests."""

from __future__ import annotations

from pathlib import Path

from app import SESSIONS
from tests import teams
from tests.harness import BotServer, Chat, FakeClock, texts

AGENTS = Path(__file__).parent / "e2e_configs" / "agents.yaml"


def person(name: str, aad: str) -> teams.TeamsUser:
    return teams.TeamsUser(name, aad, f"a:1conv-{aad}")


ALICE = ("Alice", "aaaaaaaa-0000-0000-0000-000000000001")
BOB = ("Bob", "aaaaaaaa-0000-0000-0000-000000000002")
CAROL = ("Carol", "bbbbbbbb-0000-0000-0000-000000000001")
DAVE = ("Dave", "bbbbbbbb-0000-0000-0000-000000000002")


class Desk:
    """A bot with agents who installed the app, and helpers to read their chats."""

    def __init__(self, server: BotServer, connector, clock: FakeClock) -> None:
        self.server, self.connector, self.clock = server, connector, clock
        self.agents: dict[str, Chat] = {}

    async def agent(self, who: tuple[str, str], install: bool = True) -> Chat:
        chat = Chat(person(*who), self.server, self.connector)
        self.agents[who[0]] = chat
        if install:
            sent = await chat.install()
            assert "You're an agent of" in texts(sent)
        return chat

    def guest(self, name: str = "Gina Guest") -> Chat:
        return Chat(teams.TeamsUser.make(name), self.server, self.connector)

    def offers(self, chat: Chat) -> list:
        return [s for s in self.connector.to(chat.user.conversation_id)
                if s.how != "update" and "New chat waiting" in s.all_text()]

    def updates(self, chat: Chat) -> list:
        return [s for s in self.connector.to(chat.user.conversation_id) if s.how == "update"]

    async def accept(self, chat: Chat, offer) -> tuple[int, dict]:
        activity = teams.execute(chat.user, self.connector.url, offer.card, {}, "Accept")
        status, body = await self.server.post(activity)
        return status, body

    async def session(self, guest: Chat):
        return await self.server.app[SESSIONS].live(guest.user.conversation_id)


async def waiting_guest(desk: Desk, problem: str = "My screen is black") -> Chat:
    guest = desk.guest()
    assert "What's wrong?" in texts(await guest.say("hi"))
    sent = await guest.say(problem)
    assert "Connecting you with someone from IT" in texts(sent)
    return guest
