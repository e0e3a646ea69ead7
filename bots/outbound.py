"""Everything the bot sends to the Bot Connector: pooled, rate limited, retried safely.

botbuilder's own path builds a new msrest `ConnectorClient` for every turn and posts each
reply through `requests` in a thread pool (DESIGN.md: most of a turn's CPU, and a new TCP
connection per reply). Here one aiohttp session per process keeps connections alive, and
every send first waits for its turn in two token buckets: one per conversation and one for
the whole app (Teams throttles both).

The Bot Connector has no idempotency key, so a POST is retried only where the connector
cannot have it: a 429, a 503 that says when to come back (Retry-After), a connection that
was refused. A timeout, a dropped connection or another 5xx may have delivered it: that is
`SendUnknown`, and pipelines/delivery.py decides (a card someone must act on is sent once
more, a notice is not). Updates and deletes (PUT, DELETE) change nothing twice, so they are
also retried on 5xx and timeouts. Retry-After is read in both its forms (seconds, HTTP date);
a malformed one counts as absent. A 4xx, or throttling past the retry budget, is
`SendFailed`.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import random
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp

import telemetry
from pipelines.delivery import SendFailed, SendUnknown

log = logging.getLogger("switchboard.outbound")

# Teams' published limits for a bot: about 7 messages a second in one conversation, and a
# global budget per app per Entra tenant (50 a second). Both are settings.
DEFAULT_PER_CONVERSATION = 7.0
DEFAULT_PER_APP = 50.0


class OutboundError(SendFailed):
    """The connector refused the request, or kept throttling it past the retry budget."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class OutboundUnknown(SendUnknown):
    """The request may have reached the connector: whether it took it is unknown."""


@dataclass
class _Bucket:
    tokens: float
    last: float


class RateLimiter:
    """Token buckets: `rate` sends per second, bursts up to `rate` (at least 1)."""

    def __init__(
        self,
        per_conversation: float = DEFAULT_PER_CONVERSATION,
        per_app: float = DEFAULT_PER_APP,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        max_conversations: int = 50_000,
    ) -> None:
        self.per_conversation = per_conversation
        self.per_app = per_app
        self.clock = clock
        self.sleep = sleep
        # the app budget is per Entra tenant, as Teams counts it
        self._apps: dict[str, _Bucket] = {}
        self._conversations: OrderedDict[str, _Bucket] = OrderedDict()
        self._max = max_conversations
        self.waited = 0.0
        self._acquired = 0

    def _prune(self, now: float) -> None:
        """Forget conversations whose bucket has refilled: a new bucket is the same thing."""
        cap = max(self.per_conversation, 1.0)
        full = [key for key, b in self._conversations.items()
                if b.tokens + (now - b.last) * self.per_conversation >= cap]
        for key in full:
            del self._conversations[key]

    def _take(self, bucket: _Bucket, rate: float, now: float) -> float:
        """0 if a token was taken, else how long until one is there."""
        bucket.tokens = min(max(rate, 1.0), bucket.tokens + (now - bucket.last) * rate)
        bucket.last = now
        if bucket.tokens >= 1.0 - 1e-9:  # float sums of refills land a hair under 1
            bucket.tokens = max(0.0, bucket.tokens - 1.0)
            return 0.0
        return max((1.0 - bucket.tokens) / rate, 1e-3)

    async def acquire(self, conversation_id: str, aad_tenant_id: str | None = None) -> None:
        app = self._apps.get(aad_tenant_id or "")
        if app is None:
            app = self._apps.setdefault(aad_tenant_id or "",
                                        _Bucket(max(self.per_app, 1.0), self.clock()))
        while True:
            now = self.clock()
            bucket = self._conversations.get(conversation_id)
            if bucket is None:
                bucket = _Bucket(max(self.per_conversation, 1.0), now)
                self._conversations[conversation_id] = bucket
                if len(self._conversations) > self._max:
                    self._conversations.popitem(last=False)
            self._conversations.move_to_end(conversation_id)
            wait = self._take(bucket, self.per_conversation, now)
            if wait == 0.0:
                app_wait = self._take(app, self.per_app, now)
                if app_wait == 0.0:
                    self._acquired += 1
                    if self._acquired % 1024 == 0:
                        self._prune(now)
                    return
                bucket.tokens += 1.0  # give the conversation's token back, wait for the app
                wait = app_wait
            self.waited += wait
            telemetry.waited(wait)
            await self.sleep(wait)


TokenProvider = Callable[[], Awaitable[str | None]]


async def no_token() -> str | None:
    return None


# a Retry-After longer than this is not waited for (the message fails instead)
MAX_RETRY_AFTER = 3600.0


def retry_after(value: str | None) -> float | None:
    """Seconds to wait, from either form of Retry-After; None when absent or malformed."""
    if value is None:
        return None
    value = value.strip()
    if not value or len(value) > 64:
        return None
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER)
    try:
        seconds = float(value)  # not the standard's form, but some servers send "0.5"
    except ValueError:
        pass
    else:
        if seconds >= 0 and seconds == seconds and seconds != float("inf"):
            return min(seconds, MAX_RETRY_AFTER)
        return None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when is None or when.tzinfo is None:
        return None
    return min(max(0.0, when.timestamp() - time.time()), MAX_RETRY_AFTER)


class Outbound:
    def __init__(
        self,
        *,
        token: TokenProvider = no_token,
        limiter: RateLimiter | None = None,
        retry_budget: float = 30.0,
        max_attempts: int = 6,
        timeout: float = 15.0,
    ) -> None:
        self.token = token
        self.limiter = limiter or RateLimiter()
        self.retry_budget = retry_budget
        self.max_attempts = max_attempts
        self.timeout = timeout
        self._http: aiohttp.ClientSession | None = None
        self.sent = 0
        self.retried = 0

    @property
    def http(self) -> aiohttp.ClientSession:
        if self._http is None or self._http.closed:
            self._http = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                connector=aiohttp.TCPConnector(limit=200, limit_per_host=100,
                                               keepalive_timeout=60),
                trace_configs=telemetry.client_trace_configs(),
            )
        return self._http

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None

    # -- the Bot Connector's conversation API -----------------------------------------

    async def send(self, service_url: str, conversation_id: str, activity: dict[str, Any],
                   reply_to_id: str | None = None, *,
                   budget: float | None = None) -> dict[str, Any]:
        path = f"/v3/conversations/{quote(conversation_id, safe='')}/activities"
        if reply_to_id:
            path += f"/{quote(reply_to_id, safe='')}"
        return await self.request("POST", service_url, path, conversation_id, activity,
                                  budget=budget)

    @staticmethod
    def _tenant(body: dict[str, Any] | None) -> str | None:
        conversation = (body or {}).get("conversation")
        if isinstance(conversation, dict) and isinstance(conversation.get("tenantId"), str):
            return conversation["tenantId"]
        return None

    async def update(self, service_url: str, conversation_id: str, activity_id: str,
                     activity: dict[str, Any], *,
                     budget: float | None = None) -> dict[str, Any]:
        path = (f"/v3/conversations/{quote(conversation_id, safe='')}/activities/"
                f"{quote(activity_id, safe='')}")
        return await self.request("PUT", service_url, path, conversation_id, activity,
                                  budget=budget)

    async def delete(self, service_url: str, conversation_id: str, activity_id: str) -> None:
        path = (f"/v3/conversations/{quote(conversation_id, safe='')}/activities/"
                f"{quote(activity_id, safe='')}")
        await self.request("DELETE", service_url, path, conversation_id, None)

    @telemetry.traced_send
    async def request(self, method: str, service_url: str, path: str, conversation_id: str,
                      body: dict[str, Any] | None, *,
                      budget: float | None = None) -> dict[str, Any]:
        """One request, retried where that is safe, within `retry_budget` (and `budget`)."""
        url = service_url.rstrip("/") + path
        started = time.monotonic()
        limit = self.retry_budget if budget is None else min(self.retry_budget, budget)
        tenant = self._tenant(body)
        idempotent = method != "POST"
        for attempt in range(1, self.max_attempts + 1):
            await self.limiter.acquire(conversation_id, tenant)
            headers = {}
            token = await self.token()
            if token:
                headers["Authorization"] = f"Bearer {token}"
            timeout = aiohttp.ClientTimeout(
                total=max(0.5, min(self.timeout, limit - (time.monotonic() - started)))
            )
            try:
                async with self.http.request(method, url, json=body, headers=headers,
                                             timeout=timeout) as resp:
                    telemetry.answered(resp.status)
                    if resp.status < 300:
                        self.sent += 1
                        if resp.content_type == "application/json":
                            data = await resp.json()
                            return data if isinstance(data, dict) else {}
                        await resp.read()
                        return {}
                    text = (await resp.text())[:500]
                    wait = retry_after(resp.headers.get("Retry-After"))
                    reason = f"HTTP {resp.status}"
                    if resp.status == 429:
                        delay = wait if wait is not None else _backoff(attempt)
                    elif resp.status == 503 and wait is not None:
                        delay = wait
                    elif resp.status >= 500 and idempotent:
                        delay = _backoff(attempt)
                    elif resp.status >= 500:
                        raise OutboundUnknown(f"{method} {path}: HTTP {resp.status}: {text}")
                    else:
                        raise OutboundError(f"{method} {path}: HTTP {resp.status}: {text}",
                                            resp.status)
            except aiohttp.ClientConnectorError as exc:
                # the connection was never made: the connector cannot have the request
                delay, reason = _backoff(attempt), f"{type(exc).__name__}: {exc}"
            except (aiohttp.ClientError, TimeoutError) as exc:
                if not idempotent:
                    raise OutboundUnknown(f"{method} {path}: {type(exc).__name__}: {exc}") from exc
                delay, reason = _backoff(attempt), f"{type(exc).__name__}: {exc}"
            spent = time.monotonic() - started
            if attempt == self.max_attempts or spent + delay > limit:
                raise OutboundError(
                    f"{method} {path}: gave up after {attempt} attempts in {spent:.1f}s "
                    f"({reason})"
                )
            self.retried += 1
            telemetry.retrying()
            log.warning("send will be retried", extra={"reason": reason, "delay": delay,
                                                        "attempt": attempt})
            await asyncio.sleep(delay)
        raise AssertionError("unreachable")


def _backoff(attempt: int) -> float:
    return min(8.0, 0.25 * 2 ** (attempt - 1)) * (0.8 + 0.4 * random.random())
