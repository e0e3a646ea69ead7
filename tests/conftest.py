from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from pipelines.knowledge import KnowledgeBase
from pipelines.loader import load_config
from storage.embedded import EmbeddedStore
from tests import teams
from tests.agent_desk import AGENTS, Desk
from tests.connector import start_connector
from tests.harness import BotServer, Chat, FakeClock, settings_for

pytest_plugins = ["tests.fixtures.cosmos"]


@pytest.fixture
async def connector():
    """The local Teams connector. Every card the bot sent must be a valid AC 1.5 card."""
    connector, runner = await start_connector()
    yield connector
    await runner.cleanup()
    bad = connector.invalid_cards()
    assert not bad, f"the bot sent invalid Adaptive Cards: {bad}"


@pytest.fixture(params=["embedded", "cosmos"])
async def make_docs(request, tmp_path):
    """Makes document stores that share one database: one per bot process in a test.

    Parametrized, so every end-to-end test runs on the embedded store and on Cosmos.
    """
    if request.param == "embedded":
        path = tmp_path / "bot.sqlite3"
        yield lambda: EmbeddedStore(path)
        return
    from storage.cosmos import CosmosStore

    server = request.getfixturevalue("cosmos_server")
    database = f"e2e-{uuid.uuid4().hex}"
    made: list[CosmosStore] = []

    def make() -> CosmosStore:
        store = CosmosStore(
            server.endpoint, database, key=server.key, connection_verify=False,
            max_retry_seconds=10.0,
        )
        made.append(store)
        return store

    yield make
    if made:
        cleanup = make()
        await cleanup.open()
        try:
            await cleanup.delete_database()
        finally:
            await cleanup.close()


# Wednesday 21 January 2026, 10:00 UTC: the example's HR is open (closed at weekends)
WEDNESDAY_10_UTC = 1_768_989_600.0


@pytest.fixture
async def bot(tmp_path, make_docs):
    """The example help desk. Its clock is fixed (a weekday morning): never the wall clock."""
    server = await BotServer(settings_for(tmp_path), docs=make_docs(),
                             clock=FakeClock(WEDNESDAY_10_UTC)).start()
    yield server
    await server.stop()


@pytest.fixture
def new_chat(bot, connector):
    def make(name: str = "Ada Lovelace", server: BotServer | None = None) -> Chat:
        return Chat(teams.TeamsUser.make(name), server or bot, connector)

    return make


@pytest.fixture
async def docs(make_docs):
    """One opened document store, once per backend: the same tests run on both."""
    store = make_docs()
    await store.open()
    yield store
    await store.close()


@pytest.fixture
async def desk(tmp_path, make_docs, connector):
    """A bot on tests/e2e_configs/agents.yaml, with a fake clock, and its agents' helpers."""
    clock = FakeClock()
    server = await BotServer(settings_for(tmp_path, config_path=str(AGENTS)), docs=make_docs(),
                             clock=clock).start()
    yield Desk(server, connector, clock)
    await server.stop()


@pytest.fixture(scope="module")
def kb() -> KnowledgeBase:
    """The example help desk's knowledge base (examples/helpdesk.yaml), loaded and indexed by
    the real config loader, once per module."""
    config, _ = load_config(Path(__file__).resolve().parents[1] / "examples" / "helpdesk.yaml")
    knowledge = config.knowledge_base("service-desk")
    assert knowledge is not None
    return knowledge
