"""Hostile HTTP on /api/messages: charsets, encodings, sizes, broken HTTP, member lists.

Through the real aiohttp app and adapter (embedded store, local connector), over raw
sockets where the exact bytes matter. No caller gets a 5xx or an ERROR log line for what
it sent; a body that could not be read to its end closes the connection; the server goes
on serving. The memory test runs the bot as a real process. Each test here failed before
its fix (a 500 and a traceback, a hang waiting for a body already too large, an ERROR
traceback for bad HTTP, a turn failing in botbuilder's dispatch, RSS grown for good).
"""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
import sys
import time
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from app import MAX_BODY_BYTES
from tests import teams
from tests.bot_process import clean_env, free_port, start_bot
from tests.harness import BotServer, settings_for, texts


@pytest.fixture
async def server(tmp_path):
    server = await BotServer(settings_for(tmp_path)).start()
    yield server
    await server.stop()


@dataclass
class Answer:
    status: int | None
    headers: dict[str, str]
    body: bytes
    closed: bool  # the server closed the connection after answering
    rest: bytes = b""  # what came after the answer (the answer to `then`)


async def raw(server: BotServer, data: bytes, *, then: bytes = b"", wait: float = 3.0) -> Answer:
    """Send `data` on a new connection, read one answer and whether the server then closes;
    `then` is sent once the answer has arrived (a second request on the same connection)."""
    host, port = server.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(data)
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), wait)
        lines = head.decode("latin-1").split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, _, v in
                   (line.partition(":") for line in lines[1:] if line)}
        body = await asyncio.wait_for(
            reader.readexactly(int(headers.get("content-length", "0"))), wait)
        if then:
            writer.write(then)
            await writer.drain()
        rest, closed = b"", False
        for _ in range(100):  # until the server closes, or is silent for half a second
            try:
                more = await asyncio.wait_for(reader.read(65_536), 0.5)
            except TimeoutError:
                break
            except ConnectionError:
                more = b""
            if not more:
                closed = True
                break
            rest += more
        return Answer(int(lines[0].split()[1]), headers, body, closed, rest)
    finally:
        writer.close()


GOOD = b"GET /healthz HTTP/1.1\r\nHost: bot\r\n\r\n"


def post_bytes(body: bytes, **headers: str) -> bytes:
    head = {"Host": "bot", "Content-Type": "application/json", "Content-Length": str(len(body)),
            **{name.replace("_", "-"): value for name, value in headers.items()}}
    lines = "".join(f"{name}: {value}\r\n" for name, value in head.items())
    return f"POST /api/messages HTTP/1.1\r\n{lines}\r\n".encode() + body


def _activity(connector, text: str = "hi") -> tuple[teams.TeamsUser, bytes]:
    user = teams.TeamsUser.make("Hostile Caller")
    return user, json.dumps(teams.message(user, connector.url, text)).encode()


def _errors(caplog) -> list[str]:
    return [f"{r.name}: {r.getMessage()}" for r in caplog.records if r.levelno >= logging.ERROR]


async def still_serves(server: BotServer, connector) -> None:
    async with server.http.get(f"{server.url}/healthz") as resp:
        assert resp.status == 200
    user, body = _activity(connector)
    status, _ = await server.post(json.loads(body))
    assert status == 201
    assert "welcome" in texts(connector.to(user.conversation_id))


# -- charsets and content encodings ---------------------------------------------------------


async def test_a_charset_that_is_not_text_is_400_and_the_connection_closes(server, connector,
                                                                          caplog):
    for charset in ("nonexistent", "rot13", "base64", "hex_codec"):
        user, body = _activity(connector)
        content_type = f"application/json; charset={charset}"
        answer = await raw(server, post_bytes(body, Content_Type=content_type))
        assert answer.status == 400, (charset, answer)
        message = json.loads(answer.body)["message"]
        assert f"the charset '{charset}' is not a text encoding" in message, message
        assert answer.headers["connection"] == "close" and answer.closed, answer
        assert connector.to(user.conversation_id) == []
    # a charset name that is not ASCII (aiohttp decodes it with U+FFFD for what is not UTF-8)
    for raw_charset in (b"\xe9", b"\xc3\xa9", b"\xed\xb3\xa9"):
        data = post_bytes(body).replace(b"application/json", b"application/json; charset="
                                        + raw_charset, 1)
        answer = await raw(server, data)
        assert answer.status == 400 and b"charset" in answer.body, answer
    assert not _errors(caplog)
    await still_serves(server, connector)


async def test_a_body_not_in_its_charset_is_400_and_the_connection_is_kept(server, connector,
                                                                          caplog):
    """Read to its end, so the connection can carry the next request."""
    _, body = _activity(connector)
    for charset, sent, refused in (
        (None, b"\xff\xfe\xfd" + body, "UTF-8"),
        ("utf-32", body[:-1], "utf-32"),  # a length that is not a multiple of 4
        ("idna", b"xn--zz", "idna"),  # idna raises a plain UnicodeError
    ):
        content_type = "application/json" + (f"; charset={charset}" if charset else "")
        answer = await raw(server, post_bytes(sent, Content_Type=content_type), then=GOOD)
        assert answer.status == 400 and answer.rest.startswith(b"HTTP/1.1 200 OK"), answer
        assert not answer.closed
        assert f"the body is not valid {refused}" in answer.body.decode(), answer.body
    assert not _errors(caplog)


async def test_a_body_that_does_not_match_its_content_encoding_is_400_and_closed(
        server, connector, caplog):
    for encoding in ("gzip", "deflate"):
        user, body = _activity(connector)
        answer = await raw(server, post_bytes(body, Content_Encoding=encoding))
        assert answer.status == 400, answer
        message = json.loads(answer.body)["message"]
        assert f"does not match its Content-Encoding ({encoding})" in message, message
        assert answer.headers["connection"] == "close" and answer.closed, answer
        assert connector.to(user.conversation_id) == []
    # aiohttp logged an "Unhandled exception" traceback as it drained the broken body
    assert not _errors(caplog)
    await still_serves(server, connector)


async def test_a_compressed_body_is_served(server, connector, caplog):
    for encoding, pack in (("gzip", gzip.compress), ("deflate", zlib.compress)):
        user, body = _activity(connector)
        answer = await raw(server, post_bytes(pack(body), Content_Encoding=encoding))
        assert answer.status == 201, answer
        assert "welcome" in texts(connector.to(user.conversation_id))
    assert not _errors(caplog)


async def test_a_decompression_bomb_is_413(server, connector, caplog):
    activity = teams.message(teams.TeamsUser.make("Bomb"), connector.url, "x" * 20_000_000)
    packed = gzip.compress(json.dumps(activity).encode(), 9)
    assert len(packed) < MAX_BODY_BYTES
    started = time.perf_counter()
    answer = await raw(server, post_bytes(packed, Content_Encoding="gzip"))
    assert answer.status == 413 and answer.headers["connection"] == "close", answer
    assert time.perf_counter() - started < 5
    assert not _errors(caplog)
    await still_serves(server, connector)


# -- sizes --------------------------------------------------------------------------------


async def test_a_body_over_the_limit_by_its_length_is_refused_before_it_is_read(
        server, connector, caplog):
    """Only a kilobyte of the announced 10 MB is sent: the 413 comes without the rest."""
    head = post_bytes(b"", Content_Length=str(10_000_000))
    answer = await raw(server, head + b"{" + b" " * 1024, wait=2.0)
    assert answer.status == 413, answer
    assert json.loads(answer.body) == {
        "error": "PayloadTooLarge",
        "message": f"the body is over the limit of {MAX_BODY_BYTES} bytes"}
    assert answer.headers["connection"] == "close"
    assert not _errors(caplog)
    await still_serves(server, connector)


async def test_a_streamed_body_is_refused_as_soon_as_it_passes_the_limit(server, connector,
                                                                        caplog):
    """Chunked, with no end: the 413 comes once the limit is passed."""
    head = (b"POST /api/messages HTTP/1.1\r\nHost: bot\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n")
    chunk = b"x" * 16_384
    body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk)
                    for _ in range(MAX_BODY_BYTES // len(chunk) + 2))
    answer = await raw(server, head + body, wait=2.0)
    assert answer.status == 413 and answer.headers["connection"] == "close", answer
    assert not _errors(caplog)
    await still_serves(server, connector)


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


async def _burst(url: str, count: int, size: int, in_flight: int) -> dict[Any, int]:
    """`count` bodies of `size` bytes, half with a Content-Length, half chunked."""
    body = b'{"type": "message", "text": "' + b"x" * size + b'"}'
    statuses: dict[Any, int] = {}
    gate = asyncio.Semaphore(in_flight)

    async def chunks():
        for start in range(0, len(body), 65_536):
            yield body[start:start + 65_536]

    async def one(n: int) -> None:
        async with gate:
            data = body if n % 2 else chunks()
            async with http.post(url, data=data,
                                 headers={"Content-Type": "application/json"}) as resp:
                await resp.read()
                statuses[resp.status] = statuses.get(resp.status, 0) + 1

    async with aiohttp.ClientSession() as http:
        await asyncio.gather(*(one(n) for n in range(count)))
    return statuses


def test_bursts_of_oversized_bodies_do_not_grow_memory(tmp_path):
    """The bot as a real process. Before: 300 bodies of 600 KB took RSS from 95 to 263 MB,
    and it stayed (the 256 KB read before refusing lived on in the 413's traceback)."""
    port = free_port()
    env = clean_env(SWITCHBOARD_DB_PATH=str(tmp_path / "bot.sqlite3"), SWITCHBOARD_PORT=str(port),
                    SWITCHBOARD_TIMER_INTERVAL="0", SWITCHBOARD_LOG_LEVEL="ERROR")
    process = start_bot(env, port)
    base = f"http://127.0.0.1:{port}"
    try:
        before = _rss_mb(process.pid)
        started = time.perf_counter()
        statuses = asyncio.run(_burst(f"{base}/api/messages", 300, 600 * 1024, 16))
        elapsed = time.perf_counter() - started
        after = _rss_mb(process.pid)
        again = asyncio.run(_burst(f"{base}/api/messages", 300, 600 * 1024, 16))
        after_again = _rss_mb(process.pid)
        print(f"\nRSS {before:.0f} MB -> {after:.0f} MB after 300 bodies of 600 KB "
              f"({elapsed:.1f} s) -> {after_again:.0f} MB after 300 more")
        assert statuses == {413: 300} and again == {413: 300}, (statuses, again)
        assert after - before < 20 and after_again - before < 20, (before, after, after_again)
        with urllib.request.urlopen(f"{base}/healthz", timeout=5) as resp:
            assert resp.status == 200
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=30)
    assert '"level": "error"' not in stderr, stderr[-2000:]


# -- HTTP that aiohttp refuses: a caller's mistake is one WARNING line ----------------------

BAD_METHOD = b"BAD@METHOD / HTTP/1.1\r\nHost: bot\r\n\r\n"
BAD_HTTP = {
    # aiohttp logs a bad method at DEBUG on a connection's first request only
    "a method after a good request": BAD_METHOD,
    "a header too long": b"GET /healthz HTTP/1.1\r\nHost: bot\r\nX: " + b"a" * 10_000 + b"\r\n\r\n",
    "a URL too long": b"GET /" + b"a" * 10_000 + b" HTTP/1.1\r\nHost: bot\r\n\r\n",
    "too many headers": b"GET /healthz HTTP/1.1\r\n" + b"".join(
        b"X-%d: 1\r\n" % i for i in range(200)) + b"\r\n",
    "a header name with a space": b"GET /healthz HTTP/1.1\r\nBad Header: x\r\n\r\n",
    "a NUL in a header": b"GET /healthz HTTP/1.1\r\nX: a\x00b\r\n\r\n",
    "HTTP/9.9": b"GET /healthz HTTP/9.9\r\nHost: bot\r\n\r\n",
    "the HTTP/2 preface": b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    "a chunk size that is not hex": post_bytes(b"zz\r\nabc\r\n0\r\n\r\n", Content_Length="0")
    .replace(b"Content-Length: 0", b"Transfer-Encoding: chunked"),
    "chunked and a length": post_bytes(b"0\r\n\r\n", Transfer_Encoding="chunked"),
    "a negative length": post_bytes(b"", Content_Length="-1"),
    "a length that is not a number": post_bytes(b"", Content_Length="abc"),
    "an unknown transfer encoding": post_bytes(b"", Transfer_Encoding="gzip")
    .replace(b"Content-Length: 0\r\n", b""),
    "a brotli body (no decoder)": post_bytes(b"{}", Content_Encoding="br"),
    "a zstd body (no decoder)": post_bytes(b"{}", Content_Encoding="zstd"),
}


async def test_bad_http_is_a_4xx_and_one_warning_line(server, connector, caplog):
    caplog.set_level(logging.DEBUG)
    for case, data in BAD_HTTP.items():
        caplog.clear()
        if case == "a method after a good request":
            answer = await raw(server, GOOD, then=data)
            assert answer.status == 200 and answer.rest.startswith(b"HTTP/1.0 400 "), answer
            assert answer.closed, answer
        else:
            answer = await raw(server, data)
            assert answer.status == 400, (case, answer)
        await asyncio.sleep(0.05)  # aiohttp logs as it closes the connection
        assert not _errors(caplog), case
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) <= 1 and not [r for r in warnings if r.exc_info], (case, [
            (r.name, r.getMessage(), r.exc_info) for r in warnings])
    await still_serves(server, connector)


def test_a_handlers_own_exception_stays_an_error():
    """Only what aiohttp says about the request is the caller's: a 500 is still ours."""
    from bots.json_logging import BadHttpIsTheCallers

    try:
        raise KeyError("our bug")
    except KeyError:
        record = logging.getLogger("aiohttp.server").makeRecord(
            "aiohttp.server", logging.ERROR, __file__, 1, "Error handling request from %s",
            ("127.0.0.1",), sys.exc_info())
    assert BadHttpIsTheCallers().filter(record) and record.levelno == logging.ERROR
    assert record.exc_info is not None


# -- members botbuilder cannot dispatch ---------------------------------------------------

MEMBERS = {
    "membersAdded [null]": ("membersAdded", [None], "`membersAdded[0]` must not be null"),
    "membersAdded [{}]": ("membersAdded", [{}], "`membersAdded[0].id` must be a non-empty string"),
    'membersAdded [{"id": ""}]': ("membersAdded", [{"id": ""}],
                                  "`membersAdded[0].id` must be a non-empty string"),
    'membersAdded [bot, {"name": "x"}]': ("membersAdded", [dict(teams.BOT), {"name": "x"}],
                                          "`membersAdded[1].id` must be a non-empty string"),
    "membersRemoved [null]": ("membersRemoved", [None], "`membersRemoved[0]` must not be null"),
    "membersRemoved [{}]": ("membersRemoved", [{}],
                            "`membersRemoved[0].id` must be a non-empty string"),
    "reactionsAdded [null]": ("reactionsAdded", [None], "`reactionsAdded[0]` must not be null"),
    "attachments [null]": ("attachments", [None], "`attachments[0]` must not be null"),
    "entities [null]": ("entities", [None], "`entities[0]` must not be null"),
}


async def test_lists_botbuilder_cannot_dispatch_are_400(server, connector, caplog):
    for channel in ("msteams", "webchat"):
        for case, (key, value, reason) in MEMBERS.items():
            user = teams.TeamsUser.make("Member")
            activity = teams.install(user, connector.url)
            activity.pop("membersAdded")
            activity.update({"channelId": channel, key: value})
            status, body = await server.post(activity)
            assert (status, body) == (400, {"error": "BadRequest", "message": reason}), case
            assert connector.to(user.conversation_id) == []
    assert not _errors(caplog)
    await still_serves(server, connector)


async def test_a_teams_install_logs_no_msrest_noise(server, connector, caplog):
    """Teams' install carries no name: the bot asks the connector, through botbuilder's
    TeamsInfo, which made msrest warn "eventType is not a known attribute"."""
    caplog.set_level(logging.INFO)
    user = teams.TeamsUser.make("Quiet Install")
    activity = teams.install(user, connector.url)
    activity["from"].pop("name")
    activity["membersAdded"].append({"id": user.id})  # botbuilder looks this one up too
    connector.members[user.id] = {"id": user.id, "name": "Quiet Install"}
    status, _ = await server.post(activity)
    assert status == 201
    assert "Quiet Install" in texts(connector.to(user.conversation_id))
    noise = [r.getMessage() for r in caplog.records if r.name.startswith("msrest")]
    assert noise == [], noise


def test_msrest_still_warns_of_a_name_teams_channel_data_does_not_know(caplog):
    from botbuilder.schema.teams import TeamsChannelData

    from bots.json_logging import quiet_known_noise

    quiet_known_noise()
    TeamsChannelData(eventType="teamMemberAdded", notAField=1)
    said = [r.getMessage() for r in caplog.records if r.name == "msrest.serialization"]
    assert len(said) == 1 and said[0].startswith("notAField is not a known attribute"), said
