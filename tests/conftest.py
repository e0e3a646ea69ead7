from __future__ import annotations

import pytest

from storage.embedded import EmbeddedStore

from tests import teams
from tests.connector import start_connector
from tests.harness import BotServer, Chat, settings_for

import importlib.util  # TEMP
pytest_plugins = ["tests.fixtures.cosmos"] if importlib.util.find_spec("tests.fixtures.cosmos") else []  # TEMP


@pytest.fixture
async def connector():
    """The local Teams connector. Every card the bot sent must be a valid AC 1.5 card."""
    connector, runner = await start_connector()
    yield connector
    await runner.cleanup()
    bad = connector.invalid_cards()
    assert not bad, f"the bot sent invalid Adaptive Cards: {bad}"


@pytest.fixture
async def bot(tmp_path):
    server = await BotServer(settings_for(tmp_path)).start()
    yield server
    await server.stop()


@pytest.fixture
def new_chat(bot, connector):
    def make(name: str = "Ada Lovelace", server: BotServer | None = None) -> Chat:
        return Chat(teams.TeamsUser.make(name), server or bot, connector)

    return make


@pytest.fixture(params=["embedded", "cosmos"])
async def docs(request, tmp_path):
    """The document store, once per backend: the same tests run on both."""
    if request.param == "cosmos":
        yield request.getfixturevalue("cosmos_store")
        return
    store = EmbeddedStore(tmp_path / "docs.sqlite3")
    await store.open()
    yield store
    await store.close()
