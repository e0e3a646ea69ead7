"""Sends: rate limited per conversation and per app, 429/5xx retried, failures recorded."""

from __future__ import annotations

import email.utils
import time

import pytest

from app import SESSIONS
from bots.outbound import Outbound, OutboundError, OutboundUnknown, RateLimiter, retry_after
from storage.models import Delivery
from tests.connector import Fail
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


async def test_429_and_503_with_retry_after_are_retried_and_each_message_comes_once(
    server, new_chat, connector
):
    chat = new_chat("Rita", server)
    connector.failures = [429, Fail(503, retry_after="0.05"), Fail(429, retry_after="soon")]
    sent = await chat.say("hi")
    assert connector.refused == 3
    shown = texts(sent)
    assert shown.count("welcome to the Service Desk") == 1
    assert shown.count("What do you need help with today") == 1


@pytest.mark.parametrize("failure", [Fail(500, kept=True), Fail(503, kept=True),
                                     Fail(502, kept=True)])
async def test_a_notice_that_may_have_arrived_is_not_sent_again(server, new_chat, connector,
                                                                failure):
    """A 5xx without Retry-After may come after Teams took the message: not retried."""
    chat = new_chat("Ines", server)
    connector.failures = [failure]  # the welcome card: Teams has it, the bot is not told
    shown = texts(await chat.say("hi"))
    assert shown.count("welcome to the Service Desk") == 1
    assert shown.count("What do you need help with today") == 1
    lines = await server.app[SESSIONS].transcript(*_where(server, chat))
    welcome = next(line for line in lines if "welcome" in str(line.card))
    assert welcome.status == Delivery.SKIPPED and "unknown" in welcome.error


@pytest.mark.parametrize("kept, copies", [(False, 1), (True, 2)])
async def test_a_question_that_may_not_have_arrived_is_sent_once_more(server, new_chat,
                                                                      connector, kept, copies):
    """Someone must answer it: better a second copy than none."""
    chat = new_chat("Ines", server)
    # the welcome passes; the first question's post fails in a way that hides whether it
    # arrived (Teams may have it: `kept`)
    connector.failures = [Fail(0), Fail(500, kept=kept)]
    shown = texts(await chat.say("hi"))
    assert shown.count("welcome to the Service Desk") == 1
    assert shown.count("What do you need help with today") == copies


async def test_a_send_that_keeps_failing_is_logged_and_recorded_on_the_session(
    server, new_chat, connector, caplog
):
    chat = new_chat("Omar", server)
    await chat.say("hi")
    connector.failures = [Fail(503, retry_after="0.05")] * 80
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


def _where(server, chat) -> tuple[str, str]:
    sessions = server.app[SESSIONS]
    seen = sessions._where[chat.user.conversation_id]
    return seen.tenant_id, seen.session_id


@pytest.mark.parametrize("value, expected", [
    ("0", 0.0), ("3", 3.0), ("0.5", 0.5), ("120", 120.0), ("99999999", 3600.0),
    (None, None), ("", None), ("soon", None), ("-1", None), ("nan", None), ("inf", None),
    ("1e999", None), ("Wed, 21 Oct 2015 07:28:00", None), ("x" * 100, None),
])
def test_retry_after_in_seconds_and_malformed(value, expected):
    assert retry_after(value) == expected


def test_retry_after_as_an_http_date():
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 28 <= retry_after(when) <= 31
    past = email.utils.formatdate(time.time() - 30, usegmt=True)
    assert retry_after(past) == 0.0


async def test_a_refused_connection_is_retried_until_the_budget_runs_out():
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    outbound = Outbound(retry_budget=1.5)
    try:
        with pytest.raises(OutboundError):
            await outbound.send(f"http://127.0.0.1:{port}", "a:1x", {"type": "message"})
        assert outbound.retried >= 2
    finally:
        await outbound.close()


@pytest.mark.parametrize("failure", [Fail(500), Fail(504), Fail(503), Fail(200, hang=3)])
async def test_a_post_that_may_have_arrived_is_not_retried(connector, failure):
    connector.failures = [failure]
    outbound = Outbound(retry_budget=5, timeout=1.0)
    try:
        with pytest.raises(OutboundUnknown):
            await outbound.send(connector.url, "a:1x", {"type": "message", "text": "hi"})
        assert connector.refused == 1 and outbound.retried == 0
    finally:
        await outbound.close()


async def test_an_update_is_retried_on_5xx_it_changes_nothing_twice(connector):
    connector.failures = [Fail(500), Fail(502)]
    outbound = Outbound(retry_budget=5)
    try:
        await outbound.update(connector.url, "a:1x", "sent-9", {"type": "message"})
        assert connector.refused == 2 and outbound.retried == 2
        assert connector.sent[-1].how == "update"
    finally:
        await outbound.close()
