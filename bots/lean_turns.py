"""The framework overheads of a botbuilder turn, removed; the behaviour kept.

Measured on botbuilder 4.17.1 (DESIGN.md, and bench/load.py): most of a stock turn's CPU
goes to building a new msrest `ConnectorClient` and a new `TokenApiClient` for every turn,
each rebuilding msrest's retry-code list against a 501-item list, and then every reply
goes through `requests` in a thread pool on a new TCP connection. Here:

- the connector client and the user-token client are built once per service URL / app id
  and reused (they hold no per-turn state), so `TeamsInfo` and OAuth still work;
- msrest's `safe_codes` becomes a set, for the clients that are still built;
- replies, updates and deletes go through `bots.outbound.Outbound`: one pooled aiohttp
  session, a per-conversation and per-app rate limiter, retries on 429/5xx.

Authentication, the middleware pipeline, the TurnContext and the activity handler are
botbuilder's, unchanged.
"""

from __future__ import annotations

import inspect
from collections import OrderedDict
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

_MAX_CLIENTS = 64


class _Lru(OrderedDict):
    def remember(self, key: Any, value: Any) -> Any:
        self[key] = value
        self.move_to_end(key)
        while len(self) > _MAX_CLIENTS:
            self.popitem(last=False)
        return value


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

    def _client_caches(self) -> tuple[_Lru, _Lru]:
        caches = getattr(self, "_lean_caches", None)
        if caches is None:
            caches = (_Lru(), _Lru())
            self._lean_caches = caches
        return caches

    async def close_clients(self) -> None:
        """Close the cached msrest clients (their aiohttp sessions) when the app stops."""
        for cache in self._client_caches():
            for client in list(cache.values()):
                # msrest's async clients close their aiohttp session in __aexit__
                close = getattr(client, "close", None) or getattr(client, "__aexit__", None)
                if close is None:
                    continue
                result = close() if close.__name__ == "close" else close(None, None, None)
                if inspect.isawaitable(result):
                    await result
            cache.clear()

    async def _connector_client(self, factory: Any, service_url: str, audience: str | None):
        if factory is None:
            return None
        connectors, _ = self._client_caches()
        key = (service_url, audience, getattr(factory, "_app_id", None))
        client = connectors.get(key)
        if client is None:
            client = connectors.remember(key, await factory.create(service_url, audience))
        return client

    async def _user_token_client(self, claims_identity: Any):
        _, token_clients = self._client_caches()
        key = frozenset((k, v) for k, v in (claims_identity.claims or {}).items()
                        if k in ("aud", "appid", "azp", "ver"))
        client = token_clients.get(key)
        if client is None:
            client = token_clients.remember(
                key,
                await self.bot_framework_authentication.create_user_token_client(
                    claims_identity
                ),
            )
        return client

    async def process_activity(self, auth_header_or_authenticate_request_result, activity,
                               logic):
        auth = auth_header_or_authenticate_request_result
        result = (
            await self.bot_framework_authentication.authenticate_request(activity, auth)
            if isinstance(auth, str)
            else auth
        )
        activity.caller_id = result.caller_id
        connector = await self._connector_client(
            result.connector_factory, activity.service_url, result.audience
        )
        context = self._create_turn_context(
            activity,
            result.claims_identity,
            result.audience,
            connector,
            await self._user_token_client(result.claims_identity),
            logic,
            result.connector_factory,
        )
        await self.run_pipeline(context, logic)
        return self._process_turn_results(context)

    async def process_proactive(self, claims_identity, continuation_activity, audience, logic):
        factory = self.bot_framework_authentication.create_connector_factory(claims_identity)
        connector = await self._connector_client(
            factory, continuation_activity.service_url, audience
        )
        context = self._create_turn_context(
            continuation_activity,
            claims_identity,
            audience,
            connector,
            await self._user_token_client(claims_identity),
            logic,
            factory,
        )
        await self.run_pipeline(context, logic)

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
