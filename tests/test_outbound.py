"""Sends: rate limited per conversation and per app, 429/5xx retried, failures recorded."""

from __future__ import annotations

import pytest

from app import SESSIONS
from bots.outbound import Outbound, OutboundError, RateLimiter
from tests.harness import BotServer, settings_for, texts


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


async def test_a_conversation_gets_its_burst_then_waits_its_turn():
    t = FakeTime()
    limiter = RateLimiter(per_conversation=7, per_app=1000, clock=t.clock, sleep=t.sleep)
    for _ in range(7):
        await limiter.acquire("c1")
    assert t.slept == []
    await limiter.acquire("c1")
    assert t.slept == [pytest.approx(1 / 7)]
    # another conversation is not held up by the first one's limit
    await limiter.acquire("c2")
    assert len(t.slept) == 1


async def test_the_app_limit_holds_across_conversations():
    t = FakeTime()
    limiter = RateLimiter(per_conversation=7, per_app=10, clock=t.clock, sleep=t.sleep)
    for i in range(10):
        await limiter.acquire(f"c{i}")
    assert t.slept == []
    await limiter.acquire("c99")
    assert t.slept == [pytest.approx(0.1)]
    # 20 more sends over many conversations take about 2 s of (fake) time
    for i in range(20):
        await limiter.acquire(f"d{i}")
    assert t.now == pytest.approx(2.1, abs=0.01)


@pytest.fixture
async def server(tmp_path, make_docs):
    bot = await BotServer(settings_for(tmp_path, send_retry_seconds=2.0),
                          docs=make_docs()).start()
    yield bot
    await bot.stop()


async def test_429_and_503_are_retried_and_the_guest_gets_each_message_once(
    server, new_chat, connector
):
    chat = new_chat("Rita", server)
    connector.failures = [429, 503, 429]
    sent = await chat.say("hi")
    assert connector.refused == 3
    shown = texts(sent)
    assert shown.count("welcome to the Service Desk") == 1
    assert shown.count("What do you need help with today") == 1


async def test_a_send_that_keeps_failing_is_logged_and_recorded_on_the_session(
    server, new_chat, connector, caplog
):
    chat = new_chat("Omar", server)
    await chat.say("hi")
    connector.failures = [503] * 50
    await chat.answer("Laptop fan is loud")
    connector.failures = []
    session = await server.app[SESSIONS].live(chat.user.conversation_id)
    [failed] = session.undelivered
    assert "503" in failed.error and failed.card is not None
    assert "Which department" in str(failed.card)
    assert any("could not be delivered" in r.getMessage() for r in caplog.records)
    # the session moved on and the guest can carry on
    assert session.stage_key == "department"
    assert "Moving you from Service Desk to IT." in texts(await chat.say("IT"))


async def test_a_4xx_is_not_retried(connector):
    connector.failures = [403]
    outbound = Outbound(retry_budget=5)
    try:
        with pytest.raises(OutboundError) as failed:
            await outbound.send(connector.url, "a:1x", {"type": "message", "text": "hi"})
        assert failed.value.status == 403 and connector.refused == 1 and outbound.retried == 0
    finally:
        await outbound.close()


async def test_replies_reuse_one_pooled_connection(connector):
    outbound = Outbound()
    try:
        for i in range(20):
            await outbound.send(connector.url, f"a:1conv{i % 3}", {"type": "message"})
        assert connector.connections == 1
    finally:
        await outbound.close()


async def test_the_app_limit_is_counted_per_entra_tenant():
    t = FakeTime()
    limiter = RateLimiter(per_conversation=7, per_app=5, clock=t.clock, sleep=t.sleep)
    for i in range(5):
        await limiter.acquire(f"c{i}", "tenant-a")
        await limiter.acquire(f"d{i}", "tenant-b")
    assert t.slept == []
    await limiter.acquire("c9", "tenant-a")
    assert t.slept == [pytest.approx(0.2)]


async def test_idle_conversations_are_forgotten_so_memory_stays_flat():
    t = FakeTime()
    limiter = RateLimiter(per_conversation=7, per_app=1e9, clock=t.clock, sleep=t.sleep)
    for i in range(5000):
        await limiter.acquire(f"c{i}")
        t.now += 0.01
    # buckets that refilled were dropped: only the last second's conversations remain
    assert len(limiter._conversations) < 1100
