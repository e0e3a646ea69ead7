"""The framework overheads of a botbuilder turn, removed; the behaviour kept.

Measured on botbuilder 4.17.1 (DESIGN.md, and bench/load.py): most of a stock turn's CPU
goes to building a new msrest `ConnectorClient` and a new `TokenApiClient` for every turn,
each rebuilding msrest's retry-code list against a 501-item list, and then every reply
goes through `requests` in a thread pool on a new TCP connection. Here:

- the connector client and the user-token client are built once per service URL / app id
  and reused (they hold no per-turn state), so `TeamsInfo` and OAuth still work; at most
  MAX_CLIENTS are kept, and one evicted is closed (once no turn uses it);
- msrest's `safe_codes` becomes a set, for the clients that are still built;
- replies, updates and deletes go through `bots.outbound.Outbound`: one pooled aiohttp
  session, a per-conversation and per-app rate limiter, retries on 429/5xx.

Authentication, the middleware pipeline, the TurnContext and the activity handler are
botbuilder's, unchanged.
"""

from __future__ import annotations

import inspect
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

from botbuilder.core import TurnContext
from botbuilder.schema import (
    Activity,
    ActivityTypes,
    ConversationReference,
    ResourceResponse,
)
from botframework.connector import Channels
from msrest.universal_http.requests import ClientRetryPolicy

from bots.outbound import Outbound

ClientRetryPolicy.safe_codes = frozenset(ClientRetryPolicy.safe_codes)

log = logging.getLogger(__name__)

MAX_CLIENTS = 64


async def _close(client: Any) -> None:
    """msrest's async clients close their aiohttp session in __aexit__; botbuilder's user
    token client keeps its msrest client in `_client`. A failure is logged, never raised
    into the turn that evicted the client."""
    client = getattr(client, "_client", client)
    close = getattr(client, "close", None) or getattr(client, "__aexit__", None)
    if close is None:
        return
    try:
        result = close() if close.__name__ == "close" else close(None, None, None)
        if inspect.isawaitable(result):
            await result
    except Exception as exc:
        log.warning("could not close a cached client", extra={"reason": repr(exc)[:300]})


class ClientCache:
    """Clients by key, at most MAX_CLIENTS of them: the least recently used is closed when
    it is evicted (it holds an aiohttp session and its connections), or, if a turn is still
    using it, when that turn ends."""

    def __init__(self, size: int = MAX_CLIENTS) -> None:
        self.size = size
        self._clients: OrderedDict[Hashable, Any] = OrderedDict()
        self._turns: dict[int, int] = {}  # id(client) -> turns using it now

    def __len__(self) -> int:
        return len(self._clients)

    @asynccontextmanager
    async def lease(self, key: Hashable, make: Callable[[], Awaitable[Any]]) -> AsyncIterator[Any]:
        """The client for `key` (made if missing), kept open while the block runs."""
        client = self._clients.get(key)
        if client is None:
            made = await make()
            client = self._clients.setdefault(key, made)  # another turn may have made one
            if client is not made:
                await _close(made)
        self._clients.move_to_end(key)
        self._turns[id(client)] = self._turns.get(id(client), 0) + 1
        evicted = []
        while len(self._clients) > self.size:
            evicted.append(self._clients.popitem(last=False)[1])
        try:
            for old in evicted:
                if old is not client and id(old) not in self._turns:
                    await _close(old)
            yield client
        finally:
            self._turns[id(client)] -= 1
            if not self._turns[id(client)]:
                del self._turns[id(client)]
                if self._clients.get(key) is not client:  # evicted while in use
                    await _close(client)

    async def close(self) -> None:
        clients = list(self._clients.values())
        self._clients.clear()
        for client in clients:
            await _close(client)


def _body(activity: Activity) -> dict[str, Any]:
    """The activity as JSON. Attachments given as plain dicts (our cards) are kept as is."""
    attachments = activity.attachments
    plain = [a for a in attachments or [] if isinstance(a, dict)]
    if plain:
        activity.attachments = [a for a in attachments if not isinstance(a, dict)]
    body = activity.serialize()
    if plain:
        activity.attachments = attachments
        body["attachments"] = [*body.get("attachments", []), *plain]
    return body


class LeanTurns:
    """Mix into a CloudAdapter subclass; set `outbound` before serving."""

    outbound: Outbound

    def _client_caches(self) -> tuple[ClientCache, ClientCache]:
        caches = getattr(self, "_lean_caches", None)
        if caches is None:
            caches = (ClientCache(), ClientCache())
            self._lean_caches = caches
        return caches

    async def close_clients(self) -> None:
        """Close the cached msrest clients (their aiohttp sessions) when the app stops."""
        for cache in self._client_caches():
            await cache.close()

    def _connector_client(self, factory: Any, service_url: str, audience: str | None):
        connectors, _ = self._client_caches()
        key = (service_url, audience, getattr(factory, "_app_id", None))
        return connectors.lease(key, lambda: factory.create(service_url, audience))

    def _user_token_client(self, claims_identity: Any):
        _, token_clients = self._client_caches()
        key = frozenset((k, v) for k, v in (claims_identity.claims or {}).items()
                        if k in ("aud", "appid", "azp", "ver"))
        return token_clients.lease(
            key, lambda: self.bot_framework_authentication.create_user_token_client(
                claims_identity))

    async def _run(self, activity, claims_identity, audience, factory, logic) -> TurnContext:
        """botbuilder's turn, with this turn's clients leased from the caches."""
        async with AsyncExitStack() as leases:
            connector = None
            if factory is not None:
                connector = await leases.enter_async_context(
                    self._connector_client(factory, activity.service_url, audience))
            token_client = await leases.enter_async_context(
                self._user_token_client(claims_identity))
            context = self._create_turn_context(
                activity, claims_identity, audience, connector, token_client, logic, factory,
            )
            await self.run_pipeline(context, logic)
            return context

    async def process_activity(self, auth_header_or_authenticate_request_result, activity,
                               logic):
        auth = auth_header_or_authenticate_request_result
        result = (
            await self.bot_framework_authentication.authenticate_request(activity, auth)
            if isinstance(auth, str)
            else auth
        )
        activity.caller_id = result.caller_id
        context = await self._run(activity, result.claims_identity, result.audience,
                                  result.connector_factory, logic)
        return self._process_turn_results(context)

    async def process_proactive(self, claims_identity, continuation_activity, audience, logic):
        factory = self.bot_framework_authentication.create_connector_factory(claims_identity)
        await self._run(continuation_activity, claims_identity, audience, factory, logic)

    async def send_activities(
        self, context: TurnContext, activities: list[Activity]
    ) -> list[ResourceResponse]:
        if not activities:
            raise TypeError("Expecting one or more activities, but the list was empty.")
        responses = []
        for activity in activities:
            activity.id = None
            if activity.type == ActivityTypes.invoke_response:
                context.turn_state[self._INVOKE_RESPONSE_KEY] = activity
                responses.append(ResourceResponse(id=""))
                continue
            if activity.type == ActivityTypes.trace and activity.channel_id != Channels.emulator:
                responses.append(ResourceResponse(id=""))
                continue
            if activity.type == "delay":
                import asyncio

                await asyncio.sleep(int((activity.value or 1000) / 1000))
                responses.append(ResourceResponse(id=""))
                continue
            sent = await self.outbound.send(
                activity.service_url,
                activity.conversation.id,
                _body(activity),
                activity.reply_to_id,
            )
            responses.append(ResourceResponse(id=sent.get("id") or ""))
        return responses

    async def update_activity(self, context: TurnContext, activity: Activity):
        sent = await self.outbound.update(
            activity.service_url, activity.conversation.id, activity.id, _body(activity)
        )
        return ResourceResponse(id=sent.get("id")) if sent.get("id") else None

    async def delete_activity(self, context: TurnContext, reference: ConversationReference):
        await self.outbound.delete(
            reference.service_url, reference.conversation.id, reference.activity_id
        )
