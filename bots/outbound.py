"""Everything the bot sends to the Bot Connector: pooled, rate limited, retried.

botbuilder's own path builds a new msrest `ConnectorClient` for every turn and posts each
reply through `requests` in a thread pool (DESIGN.md: most of a turn's CPU, and a new TCP
connection per reply). Here one aiohttp session per process keeps connections alive, and
every send first waits for its turn in two token buckets: one per conversation and one for
the whole app (Teams throttles both). A 429 is retried after its Retry-After, a 5xx or a
network error with exponential backoff, all within a bounded time; then `OutboundError`.
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

log = logging.getLogger("switchboard.outbound")

# Teams' published limits for a bot: about 7 messages a second in one conversation, and a
# global budget per app per Entra tenant (50 a second). Both are settings.
DEFAULT_PER_CONVERSATION = 7.0
DEFAULT_PER_APP = 50.0


class OutboundError(Exception):
    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


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
            await self.sleep(wait)


TokenProvider = Callable[[], Awaitable[str | None]]


async def no_token() -> str | None:
    return None


def _retry_after(value: str | None, default: float) -> float:
    if not value:
        return default
    try:
        return max(0.0, float(value))
    except ValueError:
        when = email.utils.parsedate_to_datetime(value)
        return max(0.0, when.timestamp() - time.time()) if when else default


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
            )
        return self._http

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None

    # -- the Bot Connector's conversation API -----------------------------------------

    async def send(self, service_url: str, conversation_id: str, activity: dict[str, Any],
                   reply_to_id: str | None = None) -> dict[str, Any]:
        path = f"/v3/conversations/{quote(conversation_id, safe='')}/activities"
        if reply_to_id:
            path += f"/{quote(reply_to_id, safe='')}"
        return await self.request("POST", service_url, path, conversation_id, activity)

    @staticmethod
    def _tenant(body: dict[str, Any] | None) -> str | None:
        conversation = (body or {}).get("conversation")
        if isinstance(conversation, dict) and isinstance(conversation.get("tenantId"), str):
            return conversation["tenantId"]
        return None

    async def update(self, service_url: str, conversation_id: str, activity_id: str,
                     activity: dict[str, Any]) -> dict[str, Any]:
        path = (f"/v3/conversations/{quote(conversation_id, safe='')}/activities/"
                f"{quote(activity_id, safe='')}")
        return await self.request("PUT", service_url, path, conversation_id, activity)

    async def delete(self, service_url: str, conversation_id: str, activity_id: str) -> None:
        path = (f"/v3/conversations/{quote(conversation_id, safe='')}/activities/"
                f"{quote(activity_id, safe='')}")
        await self.request("DELETE", service_url, path, conversation_id, None)

    async def request(self, method: str, service_url: str, path: str, conversation_id: str,
                      body: dict[str, Any] | None) -> dict[str, Any]:
        url = service_url.rstrip("/") + path
        started = time.monotonic()
        tenant = self._tenant(body)
        for attempt in range(1, self.max_attempts + 1):
            await self.limiter.acquire(conversation_id, tenant)
            headers = {}
            token = await self.token()
            if token:
                headers["Authorization"] = f"Bearer {token}"
            try:
                async with self.http.request(method, url, json=body, headers=headers) as resp:
                    if resp.status < 300:
                        self.sent += 1
                        if resp.content_type == "application/json":
                            data = await resp.json()
                            return data if isinstance(data, dict) else {}
                        await resp.read()
                        return {}
                    text = (await resp.text())[:500]
                    if resp.status == 429:
                        delay = _retry_after(resp.headers.get("Retry-After"), 1.0)
                    elif resp.status >= 500:
                        delay = _backoff(attempt)
                    else:
                        raise OutboundError(f"{method} {path}: HTTP {resp.status}: {text}",
                                            resp.status)
                    reason = f"HTTP {resp.status}"
            except (aiohttp.ClientError, TimeoutError) as exc:
                delay, reason = _backoff(attempt), f"{type(exc).__name__}: {exc}"
            spent = time.monotonic() - started
            if attempt == self.max_attempts or spent + delay > self.retry_budget:
                raise OutboundError(
                    f"{method} {path}: gave up after {attempt} attempts in {spent:.1f}s "
                    f"({reason})"
                )
            self.retried += 1
            log.warning("send will be retried", extra={"reason": reason, "delay": delay,
                                                        "attempt": attempt})
            await asyncio.sleep(delay)
        raise AssertionError("unreachable")


def _backoff(attempt: int) -> float:
    return min(8.0, 0.25 * 2 ** (attempt - 1)) * (0.8 + 0.4 * random.random())
