"""The connector clients the bot caches per serviceUrl are closed when they are evicted.

Through the real app: guests install from 300 different serviceUrls (one local connector
answering under 300 path prefixes, as Teams' regional serviceUrls differ by path), and the
bot asks each for the guest's name with botbuilder's own client, one per serviceUrl. The
cache keeps 64; before, the evicted ones were dropped without being closed, and 300
installs left over 220 more files open.
"""

from __future__ import annotations

import gc
import os
from dataclasses import dataclass

import pytest
from aiohttp import web

from bots.lean_turns import MAX_CLIENTS, ClientCache
from tests import teams
from tests.connector import Connector, start_connector
from tests.harness import BotServer, settings_for, texts

INSTALLS = 300


@dataclass
class RegionalConnector(Connector):
    """The local connector, also under any one-segment path prefix (`/region-7/v3/...`)."""

    def app(self) -> web.Application:
        app = super().app()
        base = "/{region}/v3/conversations/{conversation_id}"
        app.router.add_post(base + "/activities", self.post)
        app.router.add_post(base + "/activities/{activity_id}", self.reply)
        app.router.add_get(base + "/members/{member_id}", self.member)
        return app


@pytest.fixture
async def regional():
    connector, runner = await start_connector(RegionalConnector())
    yield connector
    await runner.cleanup()


def open_files() -> int:
    return len(os.listdir("/proc/self/fd"))


async def test_evicted_connector_clients_are_closed(tmp_path, regional):
    server = await BotServer(settings_for(
        tmp_path, sends_per_conversation=1e6, sends_per_app=1e6)).start()
    try:
        async def install(n: int) -> teams.TeamsUser:
            user = teams.TeamsUser.make(f"Guest {n}")
            activity = teams.install(user, f"{regional.url}/region-{n}/")
            activity["from"].pop("name")  # Teams sends none: the bot asks the connector
            regional.members[user.id] = {"id": user.id, "name": f"Guest {n}"}
            status, _ = await server.post(activity)
            assert status == 201
            return user

        await install(-1)  # the app's own files (store, pooled connections) are open
        gc.collect()
        before = open_files()
        users = [await install(n) for n in range(INSTALLS)]
        gc.collect()
        grown = open_files() - before
        print(f"\n{grown} more files open after {INSTALLS} installs from distinct serviceUrls")
        # each guest was welcomed by the name botbuilder's client looked up
        assert all(f"Guest {n}" in texts(regional.to(u.conversation_id))
                   for n, u in enumerate(users))
        # at most the cached clients' connections stay open, each seen from both ends
        # (the connector runs in this process too)
        assert grown <= 2 * MAX_CLIENTS + 10, f"{grown} more files open after {INSTALLS} installs"
    finally:
        await server.stop()


class FakeClient:
    def __init__(self, name: str) -> None:
        self.name, self.closed = name, 0

    async def close(self) -> None:
        self.closed += 1


async def test_a_client_evicted_while_a_turn_uses_it_is_closed_when_the_turn_ends():
    cache = ClientCache(size=2)
    made: dict[str, FakeClient] = {}

    async def make(name: str) -> FakeClient:
        made[name] = FakeClient(name)
        return made[name]

    async with cache.lease("a", lambda: make("a")) as a:
        async with cache.lease("b", lambda: make("b")), cache.lease("c", lambda: make("c")):
            assert len(cache) == 2 and a.closed == 0  # evicted, but in use
        assert made["b"].closed == 0 and made["c"].closed == 0  # cached: kept open
        async with cache.lease("a", lambda: make("a2")) as again:
            assert again is not a  # a new client: the evicted one is not handed out again
    assert a.closed == 1 and made["b"].closed == 1  # a at its turn's end; b evicted by a2
    await cache.close()
    assert [c.closed for c in made.values()] == [1, 1, 1, 1]
