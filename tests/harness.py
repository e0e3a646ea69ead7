"""Runs the real aiohttp app on a free loopback port, with the real adapter."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

import app as switchboard_app
from storage.documents import DocumentStore
from tests import teams
from tests.connector import Connector, Sent

EXAMPLE_CONFIG = Path(__file__).resolve().parents[1] / "examples" / "helpdesk.yaml"


@dataclass
class BotServer:
    settings: switchboard_app.Settings
    docs: DocumentStore | None = None
    url: str = ""
    runner: web.AppRunner | None = None
    app: web.Application | None = None
    http: aiohttp.ClientSession | None = None
    clock: Any = None
    # middlewares to add in front of the app's own (the fault harness turns a kill into a
    # dropped connection)
    middlewares: list[Any] = field(default_factory=list)

    async def start(self) -> BotServer:
        extra: dict[str, Any] = {"clock": self.clock} if self.clock is not None else {}
        extra["config"] = loaded(self.settings.config_path)
        self.app = switchboard_app.create_app(self.settings, docs=self.docs, **extra)
        self.app.middlewares[:0] = self.middlewares
        self.runner = web.AppRunner(self.app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        self.http = aiohttp.ClientSession()
        return self

    async def stop(self) -> None:
        if self.http is not None:
            await self.http.close()
        if self.runner is not None:
            await self.runner.cleanup()
        self.runner = self.http = None

    async def fire_timers(self) -> int:
        """Run the timers that are due now (the tests' clock), as the background loop would."""
        assert self.app is not None
        return await self.app[switchboard_app.TIMERS].run_once()

    async def sweep(self) -> int:
        """Run the delivery sweep once, as the background loop would."""
        assert self.app is not None
        return await self.app[switchboard_app.RECOVERY].sweep()

    async def post(self, activity: Any, **kwargs: Any) -> tuple[int, Any]:
        assert self.http is not None
        async with self.http.post(f"{self.url}/api/messages", json=activity, **kwargs) as resp:
            body = await resp.text()
            try:
                import json

                return resp.status, json.loads(body) if body else None
            except ValueError:
                return resp.status, body


_LOADED: dict[tuple[str, tuple[tuple[str, int], ...]], Any] = {}


def loaded(path: str) -> Any:
    """A config file loaded once per test run (and again when it, or a YAML/JSON file beside or
    under it, changes: its cards and knowledge base): starting a bot then costs milliseconds, not
    the checking of every card against the schema."""
    from pipelines.loader import load_config

    folder = Path(path).resolve().parent
    files = tuple(sorted((str(f), f.stat().st_mtime_ns) for f in folder.rglob("*")
                         if f.suffix in (".yaml", ".yml", ".json") and f.is_file()))
    key = (str(Path(path).resolve()), files)
    if key not in _LOADED:
        _LOADED[key] = load_config(path)[0]
    return _LOADED[key]


def settings_for(tmp_path: Path, **overrides: Any) -> switchboard_app.Settings:
    """Settings for a bot in a test. Every server is an instance of its own (two servers in
    one test are two instances); a test that restarts "the same instance" passes its name.
    The sweep, the purge and the console's fold run only when a test asks (`sweep`)."""
    values = {
        "config_path": str(EXAMPLE_CONFIG),
        "db_path": str(tmp_path / "switchboard.sqlite3"),
        "store": "embedded",
        "timer_interval": 0,
        "sweep_interval": 0,
        "purge_interval": 0,
        "console_fold_interval": 0,
        "instance_name": f"test-{uuid.uuid4().hex[:8]}",
        **overrides,
    }
    return switchboard_app.Settings(**values)


@dataclass
class Chat:
    """One guest's personal chat with the bot."""

    user: teams.TeamsUser
    bot: BotServer
    connector: Connector
    seen: int = 0
    statuses: list[int] = field(default_factory=list)
    # deliver every activity twice: "twice" (one after the other), "concurrent" (at the
    # same moment), "interleaved" (each one again after the next one)
    replay: str | None = None
    _previous: dict[str, Any] | None = None

    def _new(self) -> list[Sent]:
        mine = self.connector.to(self.user.conversation_id)
        new, self.seen = mine[self.seen:], len(mine)
        return new

    async def send(self, activity: dict[str, Any]) -> list[Sent]:
        if self.replay == "concurrent":
            results = await asyncio.gather(self.bot.post(activity), self.bot.post(activity))
            status, body = results[0]
            assert all(r[0] in (200, 201) for r in results), results
        else:
            status, body = await self.bot.post(activity)
            if self.replay == "twice":
                again, _ = await self.bot.post(activity)
                assert again in (200, 201), again
            elif self.replay == "interleaved" and self._previous is not None:
                again, _ = await self.bot.post(self._previous)
                assert again in (200, 201), again
        self._previous = activity
        self.statuses.append(status)
        assert status in (200, 201), (status, body)
        self.last_body = body
        return self._new()

    async def install(self) -> list[Sent]:
        return await self.send(teams.install(self.user, self.connector.url))

    async def say(self, text: str) -> list[Sent]:
        return await self.send(teams.message(self.user, self.connector.url, text))

    def last_card(self, with_button: bool = True) -> dict[str, Any]:
        for sent in reversed(self.connector.to(self.user.conversation_id)):
            for card in reversed(sent.cards):
                if not with_button or list(teams._actions(card)):
                    return card
        raise AssertionError("no card with buttons was sent to this guest")

    async def press(self, button: str | None = None, **inputs: Any) -> list[Sent]:
        card = self.last_card()
        action = teams.find_action(card, button)
        if action["type"] == "Action.Execute":
            return await self.send(teams.execute(self.user, self.connector.url, card, inputs,
                                                 button))
        return await self.send(teams.submit(self.user, self.connector.url, card, inputs, button))

    async def answer(self, text: str) -> list[Sent]:
        return await self.press(None, answer=text)


class FakeClock:
    """Epoch seconds that only move when a test says so."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def texts(sent: list[Sent]) -> str:
    return "\n".join(s.all_text() for s in sent)
