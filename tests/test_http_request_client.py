"""The HTTP client of `http_request` stages: what it retries (a refused connection, 429, 503,
within the timeout) and what it does not, its Retry-After, response limits, and the excerpt of
an error it lets the log see. Real sockets on loopback."""

from __future__ import annotations

import asyncio
import socket
from datetime import UTC, datetime
from email.utils import format_datetime

from aiohttp import web

from pipelines.http_calls import (
    MAX_RESPONSE_BYTES,
    HttpClient,
    Outcome,
    OutgoingRequest,
    excerpt,
    retry_after,
)
from tests.ticket_desk import Fault, TicketDesk

AUTH = "Basic dGlja2V0czpzM2NyZXQtdmFsdWU="


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def post(url: str, timeout: float = 3.0, redact: tuple[str, ...] = ()) -> OutgoingRequest:
    return OutgoingRequest("POST", url, {"Authorization": AUTH}, b"{}", timeout,
                           ("127.0.0.1",), redact)


async def call(request: OutgoingRequest):
    client = HttpClient()
    try:
        return await client.call(request)
    finally:
        await client.close()


async def test_a_refused_connection_is_retried_until_the_endpoint_answers():
    port = free_port()
    desk = TicketDesk()

    async def open_later() -> None:
        await asyncio.sleep(0.4)
        app = web.Application()
        app.router.add_post("/api/now/table/incident", desk._create_incident)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        desk._runner = runner

    opening = asyncio.create_task(open_later())
    try:
        result = await call(post(f"http://127.0.0.1:{port}/api/now/table/incident"))
    finally:
        await opening
        await desk.stop()
    assert result.outcome == Outcome.DONE, result
    assert result.attempts >= 2 and all("refused the connection" in r for r in result.retried)
    assert len(desk.created()) == 1


async def test_a_connection_refused_past_the_timeout_is_a_failure_not_an_unknown():
    result = await call(post(f"http://127.0.0.1:{free_port()}/x", timeout=1.0))
    assert result.outcome == Outcome.FAILED and "refused the connection" in result.reason
    assert result.attempts >= 2 and result.seconds < 1.5


async def test_503_retries_are_bounded_by_the_timeout():
    desk = await TicketDesk(auth=AUTH).start()
    desk.faults = [Fault(status=503)] * 20
    try:
        result = await call(post(f"{desk.url}/api/now/table/incident", timeout=2.0))
    finally:
        await desk.stop()
    assert result.outcome == Outcome.FAILED and result.status == 503
    assert 2 <= len(desk.posts()) <= 6 and result.seconds < 2.5
    assert desk.created() == []


async def test_a_dropped_connection_is_unknown_and_not_retried():
    desk = await TicketDesk(auth=AUTH).start()
    desk.faults = [Fault(drop=True, acts=True)]
    try:
        result = await call(post(f"{desk.url}/api/now/table/incident"))
    finally:
        await desk.stop()
    assert result.outcome == Outcome.UNKNOWN and len(desk.posts()) == 1


async def test_a_huge_answer_is_read_up_to_the_limit():
    async def huge(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(status=201)
        await response.prepare(request)
        for _ in range(40):
            await response.write(b"x" * 65536)
        return response

    app = web.Application()
    app.router.add_post("/big", huge)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    try:
        result = await call(post(f"http://127.0.0.1:{port}/big"))
    finally:
        await runner.cleanup()
    assert result.outcome == Outcome.DONE and result.json is None
    assert MAX_RESPONSE_BYTES < 40 * 65536


def test_retry_after_in_seconds_and_as_a_date():
    now = datetime(2026, 1, 21, 10, 0, tzinfo=UTC).timestamp()
    assert retry_after("3") == 3.0
    assert retry_after(format_datetime(datetime(2026, 1, 21, 10, 0, 7, tzinfo=UTC),
                                       usegmt=True), now=lambda: now) == 7.0
    for bad in (None, "", "soon", "-1", "1e9", "9" * 50):
        assert retry_after(bad) is None, bad


def test_the_excerpt_hides_secrets_and_typed_text():
    typed = 'my "payslip" is wrong'
    body = (b'{"error": {"message": "bad value my \\"payslip\\" is wrong", '
            b'"detail": "password=hunter2 Bearer abcdefghij"}, "api_key": "k-123"}')
    text = excerpt(body, [typed, "s3cret-value"])
    assert "payslip" not in text and "hunter2" not in text and "abcdefghij" not in text
    assert "k-123" not in text and text.count("[redacted]") == 4
    assert "\n" not in excerpt(b"line one\nline two", [])
    assert len(excerpt(b"x" * 10_000, [])) <= 301
