"""A local HTTP server that plays the Teams connector (Bot Connector service).

The bot posts its replies here as it would to Teams; tests read them back.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from cards.schema import CARD_CONTENT_TYPE, validate_card


@dataclass
class Sent:
    conversation_id: str
    activity: dict[str, Any]
    # "post", "reply" or "update"
    how: str
    activity_id: str
    # when the connector got it (time.monotonic())
    at: float = field(default_factory=time.monotonic)

    @property
    def text(self) -> str | None:
        return self.activity.get("text")

    @property
    def cards(self) -> list[dict[str, Any]]:
        return [
            a["content"]
            for a in self.activity.get("attachments") or []
            if a.get("contentType") == CARD_CONTENT_TYPE
        ]

    @property
    def card(self) -> dict[str, Any] | None:
        cards = self.cards
        return cards[0] if cards else None

    def all_text(self) -> str:
        """Everything a person would read: the text and every card TextBlock/Fact."""
        parts = [self.text or ""]
        for card in self.cards:
            parts.extend(_texts(card))
        return "\n".join(p for p in parts if p)


def _texts(node: Any) -> list[str]:
    out: list[str] = []
    if isinstance(node, dict):
        for key in ("text", "title", "value"):
            if isinstance(node.get(key), str) and node.get("type") != "Input.Text":
                out.append(node[key])
        for value in node.values():
            if isinstance(value, (dict, list)):
                out.extend(_texts(value))
    elif isinstance(node, list):
        for item in node:
            out.extend(_texts(item))
    return out


@dataclass(frozen=True)
class Fail:
    """One answer the connector gives instead of accepting a post.

    `retry_after`: a Retry-After header. `kept`: the connector records the message before
    failing, as when Teams took it and the answer was lost (the bot cannot know it arrived).
    `hang`: the answer never comes (the bot's request times out). A status of 0 passes: the
    post is accepted as usual (to fail a later one)."""

    status: int = 500
    retry_after: str | None = None
    kept: bool = False
    hang: float = 0.0


@dataclass
class Connector:
    url: str = ""
    sent: list[Sent] = field(default_factory=list)
    members: dict[str, dict[str, Any]] = field(default_factory=dict)
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1))
    _changed: asyncio.Condition | None = None
    # answers instead of accepting, one per incoming post: a status (429s get Retry-After),
    # or a `Fail`
    failures: list[int | Fail] = field(default_factory=list)
    retry_after: str = "0.05"
    refused: int = 0
    _transports: set[int] = field(default_factory=set)
    # seconds the connector takes to answer a post to these conversations (slow Teams)
    slow: dict[str, float] = field(default_factory=dict)
    # the next post to each of these conversations waits until its event is set (Teams
    # holding a send): the entry goes when that post arrives, so later posts pass
    held: dict[str, asyncio.Event] = field(default_factory=dict)

    @property
    def connections(self) -> int:
        """How many TCP connections the bot opened to post its messages."""
        return len(self._transports)

    def to(self, conversation_id: str) -> list[Sent]:
        return [s for s in self.sent if s.conversation_id == conversation_id]

    def cards_sent(self) -> list[dict[str, Any]]:
        return [card for s in self.sent for card in s.cards]

    def invalid_cards(self) -> list[tuple[dict[str, Any], list[str]]]:
        return [(c, p) for c in self.cards_sent() if (p := validate_card(c))]

    def clear(self) -> None:
        self.sent.clear()

    # -- handlers --------------------------------------------------------------------

    async def _record(self, request: web.Request, how: str) -> web.Response:
        activity = await request.json()
        self._transports.add(id(request.transport))
        delay = self.slow.get(request.match_info["conversation_id"])
        if delay:
            await asyncio.sleep(delay)
        hold = self.held.pop(request.match_info["conversation_id"], None)
        if hold is not None:
            await hold.wait()
        if self.failures:
            failure = self.failures.pop(0)
            if isinstance(failure, int):
                failure = Fail(failure, self.retry_after if failure == 429 else None)
            if failure.status == 0:
                return web.json_response({"id": self._keep(request, activity, how)})
            self.refused += 1
            if failure.kept:
                self._keep(request, activity, how)
            if failure.hang:
                await asyncio.sleep(failure.hang)
            headers = {"Retry-After": failure.retry_after} if failure.retry_after else {}
            return web.json_response({"error": {"code": "Failed"}}, status=failure.status,
                                     headers=headers)
        return web.json_response({"id": self._keep(request, activity, how)})

    def _keep(self, request: web.Request, activity: dict[str, Any], how: str) -> str:
        conversation_id = request.match_info["conversation_id"]
        activity_id = request.match_info.get("activity_id") if how == "update" else None
        activity_id = activity_id or f"sent-{next(self._ids)}"
        self.sent.append(Sent(conversation_id, activity, how, activity_id))
        return activity_id

    async def post(self, request: web.Request) -> web.Response:
        return await self._record(request, "post")

    async def reply(self, request: web.Request) -> web.Response:
        return await self._record(request, "reply")

    async def update(self, request: web.Request) -> web.Response:
        return await self._record(request, "update")

    async def member(self, request: web.Request) -> web.Response:
        member_id = request.match_info["member_id"]
        info = self.members.get(member_id, {"id": member_id, "name": "Someone"})
        return web.json_response(info)

    def app(self) -> web.Application:
        app = web.Application()
        base = "/v3/conversations/{conversation_id}"
        app.router.add_post(base + "/activities", self.post)
        app.router.add_post(base + "/activities/{activity_id}", self.reply)
        app.router.add_put(base + "/activities/{activity_id}", self.update)
        app.router.add_get(base + "/members/{member_id}", self.member)
        return app


async def start_connector(connector: Connector | None = None) -> tuple[Connector, web.AppRunner]:
    """`connector` (a plain one by default) served on a free loopback port."""
    connector = connector or Connector()
    runner = web.AppRunner(connector.app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    connector.url = f"http://127.0.0.1:{port}"
    return connector, runner
