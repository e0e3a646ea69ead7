"""One outgoing HTTP call of an `http_request` stage: sent through the URL guard, retried only
where the endpoint cannot have acted, and judged.

Retried, within the stage's `timeout` (all attempts together): a 429 or a 503 (after its
`Retry-After`, seconds or an HTTP date, when it fits in what is left of the timeout; otherwise
after 0.25 s, 0.5 s, 1 s...), and a connection that was refused. Nothing else: a timeout, a
connection dropped after the request was sent, or another status leave the endpoint's state
unknown or final, and the same request again could act twice.

Redirects: a 307 or 308 to the same scheme, host and port is followed (at most 3); any other
redirect is an error, never followed to another host. A response is read up to 1 MiB.

What is logged (by the caller) is `CallResult.reason`: the status and a short excerpt of what the
endpoint answered, with the values of secret headers, every value bound from metadata (what the
guest typed) and the values of secret-looking JSON keys replaced by `[redacted]`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from enum import StrEnum
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver
from yarl import URL

from pipelines.url_guard import GuardedResolver, Refused, check_url

MAX_ATTEMPTS = 6
MAX_REDIRECTS = 3
MAX_RESPONSE_BYTES = 1 << 20
EXCERPT_CHARS = 300
RETRY_STATUSES = frozenset({429, 503})
# a connection that is not set up by then never carried the request: judged as failed
CONNECT_SECONDS = 5.0
SECRET_KEY = re.compile(r"pass(word)?|secret|token|auth|api[-_]?key|cookie|credential|session",
                        re.IGNORECASE)
# `password=...`, `"token": "..."` and `Bearer ...` inside a text
SECRET_TEXT = re.compile(r"\b((?:pass(?:word|wd)?|pwd|secret|token|api[-_]?key|authorization|auth|"
                         r"credentials?|cookie|session)[\"']?\s*[:=]\s*[\"']?)[^\s\"',;&]+",
                         re.IGNORECASE)
CREDENTIAL = re.compile(r"\b(bearer|basic|token)\s+[\w.~+/=-]{6,}", re.IGNORECASE)


class Outcome(StrEnum):
    # a 2xx
    DONE = "done"
    # the endpoint answered with an error, or the request never left (refused connection,
    # no such host): nothing happened there
    FAILED = "failed"
    # no answer in time, or the connection dropped after the request left: it may have acted
    UNKNOWN = "unknown"
    # the URL guard refused the URL or the address (url_guard.py)
    REFUSED = "refused"
    # not sent on purpose: the simulator's dry run shows it instead
    NOT_SENT = "not_sent"


@dataclass(frozen=True)
class OutgoingRequest:
    method: str
    url: str
    # secret values included: never logged
    headers: dict[str, str]
    body: bytes | None
    timeout: float
    allowlist: tuple[str, ...]
    # texts that must not reach a log line: secret header values, values bound from metadata
    redact: tuple[str, ...] = ()
    # header -> the environment variable its value came from (shown instead of the value)
    secret_headers: dict[str, str] = field(default_factory=dict)


@dataclass
class CallResult:
    outcome: Outcome
    status: int | None = None
    attempts: int = 0
    seconds: float = 0.0
    # the parsed JSON answer of a 2xx (None when it had none, or not JSON)
    json: Any = None
    # why it failed, safe to log
    reason: str = ""
    retried: list[str] = field(default_factory=list)


Sleep = Callable[[float], Awaitable[None]]


class HttpClient:
    """A pooled aiohttp session whose connector resolves through the URL guard."""

    def __init__(self, *, resolver: AbstractResolver | None = None,
                 sleep: Sleep = asyncio.sleep) -> None:
        self._resolver = resolver
        self._sleep = sleep
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(resolver=GuardedResolver(self._resolver),
                                             use_dns_cache=False, limit=50)
            # trust_env=False: no proxy from the environment can carry a call elsewhere
            self._session = aiohttp.ClientSession(connector=connector, trust_env=False,
                                                  auto_decompress=True)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def call(self, request: OutgoingRequest) -> CallResult:
        started = time.monotonic()
        deadline = started + request.timeout
        result = await self._attempts(request, deadline)
        result.seconds = round(time.monotonic() - started, 3)
        return result

    async def _attempts(self, request: OutgoingRequest, deadline: float) -> CallResult:
        try:
            url = check_url(request.url, request.allowlist)
        except Refused as exc:
            return CallResult(Outcome.REFUSED, reason=str(exc))
        origin = url.origin()
        last: CallResult | None = None
        retried: list[str] = []
        redirects = 0
        for attempt in range(1, MAX_ATTEMPTS + 1):
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                answer = await self._send(request, url, left)
            except Refused as exc:
                return CallResult(Outcome.REFUSED, attempts=attempt, reason=str(exc))
            except aiohttp.ConnectionTimeoutError:
                return CallResult(Outcome.FAILED, attempts=attempt,
                                  reason=f"no connection to {url.host} within "
                                         f"{CONNECT_SECONDS:g} s")
            except aiohttp.ClientConnectorError as exc:
                if not isinstance(exc.os_error, ConnectionRefusedError):
                    return CallResult(Outcome.FAILED, attempts=attempt,
                                      reason=f"cannot connect to {url.host}: {_os_reason(exc)}")
                last = CallResult(Outcome.FAILED, attempts=attempt,
                                  reason=f"{url.host} refused the connection")
                wait = _backoff(attempt)
            except (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError,
                    aiohttp.ClientOSError) as exc:
                return CallResult(Outcome.UNKNOWN, attempts=attempt,
                                  reason=f"the connection dropped: {type(exc).__name__}")
            except TimeoutError:
                return CallResult(Outcome.UNKNOWN, attempts=attempt,
                                  reason=f"no answer within {request.timeout:g} s")
            except (aiohttp.InvalidURL, ValueError) as exc:
                return CallResult(Outcome.FAILED, attempts=attempt,
                                  reason=f"the request could not be sent: {type(exc).__name__}")
            else:
                status, headers, body = answer
                if status in (307, 308) and redirects < MAX_REDIRECTS:
                    target = _redirect(url, headers)
                    if target is not None and target.origin() == origin:
                        redirects += 1
                        url = target
                        continue
                if 300 <= status < 400:
                    where = _redirect(url, headers)
                    return CallResult(Outcome.FAILED, status, attempt,
                                      reason=f"HTTP {status}: a redirect to "
                                             f"{where.host if where else '?'} is not followed")
                if status in RETRY_STATUSES:
                    last = CallResult(Outcome.FAILED, status, attempt,
                                      reason=f"HTTP {status}: {excerpt(body, request.redact)}")
                    wait = retry_after(headers.get("Retry-After"))
                    wait = _backoff(attempt) if wait is None else wait
                elif 200 <= status < 300:
                    return CallResult(Outcome.DONE, status, attempt, json=_json(body))
                else:
                    return CallResult(Outcome.FAILED, status, attempt,
                                      reason=f"HTTP {status}: {excerpt(body, request.redact)}")
            assert last is not None
            last.retried = retried
            if wait > deadline - time.monotonic():
                last.reason += f"; not retried: the next try ({wait:g} s) is past the timeout"
                return last
            retried.append(last.reason)
            await self._sleep(wait)
        return last or CallResult(Outcome.UNKNOWN, reason="the timeout ran out")

    async def _send(self, request: OutgoingRequest, url: URL,
                    left: float) -> tuple[int, dict[str, str], bytes]:
        timeout = aiohttp.ClientTimeout(total=left, sock_connect=min(left, CONNECT_SECONDS))
        async with self._client().request(request.method, url, headers=request.headers,
                                          data=request.body, allow_redirects=False,
                                          timeout=timeout) as response:
            body = await _read(response)
            return response.status, dict(response.headers), body


async def _read(response: aiohttp.ClientResponse) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(64 * 1024):
        chunks.append(chunk)
        size += len(chunk)
        if size > MAX_RESPONSE_BYTES:
            break
    return b"".join(chunks)[:MAX_RESPONSE_BYTES]


def _json(body: bytes) -> Any:
    if not body or len(body) >= MAX_RESPONSE_BYTES:
        return None
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        return None


def _redirect(url: URL, headers: dict[str, str]) -> URL | None:
    location = headers.get("Location")
    if not location:
        return None
    try:
        return url.join(URL(location))
    except ValueError:
        return None


def _backoff(attempt: int) -> float:
    return min(0.25 * 2 ** (attempt - 1), 4.0)


def retry_after(value: str | None, now: Callable[[], float] = time.time) -> float | None:
    """Seconds to wait from a Retry-After header (seconds, or an HTTP date); None if absent or
    malformed."""
    if not value:
        return None
    text = value.strip()
    if text.isdigit() and len(text) <= 6:
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None or when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - now())


def _os_reason(exc: aiohttp.ClientConnectorError) -> str:
    error = exc.os_error
    return error.strerror or type(error).__name__ if error else str(exc)


def excerpt(body: bytes, redact: Iterable[str]) -> str:
    """A short, single-line excerpt of what the endpoint answered, without secrets or what a
    guest typed."""
    text = body.decode("utf-8", "replace")
    with contextlib.suppress(ValueError, RecursionError):
        text = json.dumps(_masked(json.loads(text)), ensure_ascii=False)
    text = text[:4096]
    for value in sorted({v for v in redact if len(v) >= 3}, key=len, reverse=True):
        text = text.replace(value, "[redacted]")
        escaped = json.dumps(value, ensure_ascii=False)[1:-1]
        if escaped != value:
            text = text.replace(escaped, "[redacted]")
    text = SECRET_TEXT.sub(r"\1[redacted]", text)
    text = CREDENTIAL.sub(r"\1 [redacted]", text)
    text = " ".join(text.split())
    if not text:
        return "(no body)"
    return text if len(text) <= EXCERPT_CHARS else text[:EXCERPT_CHARS] + "…"


def _masked(node: Any, depth: int = 0) -> Any:
    if depth > 20:
        return "…"
    if isinstance(node, dict):
        return {k: "[redacted]" if SECRET_KEY.search(str(k)) and not isinstance(v, dict | list)
                else _masked(v, depth + 1) for k, v in node.items()}
    if isinstance(node, list):
        return [_masked(v, depth + 1) for v in node]
    return node
