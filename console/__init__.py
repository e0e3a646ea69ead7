"""The supervisor console: a web page served by the bot's own app (and a Teams tab) where
supervisors watch their departments live, read and search chats, run reports, and assign,
transfer and close chats. See docs/console.md.

`mount` wires it into the app: its routes under /console, and the fold of the figures
(storage/fold.py) as a background loop, one instance at a time.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from aiohttp import web

from console.auth import Auth
from console.live import Board, rating_keys
from console.reports import Reports
from console.routes import CONSOLE, Console, add_routes
from console.views import Views
from pipelines.config import SwitchboardConfig
from pipelines.routing import Routing
from pipelines.routing.supervise import Supervision
from settings import Settings
from storage.agents import AgentStore
from storage.documents import DocumentStore
from storage.fold import Folder
from storage.sessions import SessionStore

log = logging.getLogger("switchboard.console")

__all__ = ["CONSOLE", "Console", "mount"]


def mount(app: web.Application, *, settings: Settings, config: SwitchboardConfig,
          docs: DocumentStore, sessions: SessionStore, routing: Routing, owner: str,
          clock: Callable[[], float] = time.time) -> Console:
    folder = Folder(docs, lambda: [t.id for t in config.tenants], rating_keys(config),
                    lag=settings.console_fold_lag, retention_seconds=sessions.retention_seconds,
                    owner=owner, lease_seconds=max(30.0, settings.console_fold_interval * 3))
    console = Console(
        Auth(settings, docs, config),
        Board(config, docs, sessions, AgentStore(docs), refresh=settings.console_refresh,
              idle_minutes=settings.console_idle_minutes, clock=clock),
        Views(config, docs, sessions),
        Reports(config, docs),
        Supervision(routing),
        folder,
    )
    app[CONSOLE] = console
    add_routes(app)
    loops: list[asyncio.Task] = []

    async def fold_once() -> None:
        if await folder.take_lease():
            await folder.fold()

    async def folding() -> None:
        while True:
            try:
                await fold_once()
            except Exception:
                log.warning("the console's fold failed; trying again in %gs",
                            settings.console_fold_interval, exc_info=True)
            await asyncio.sleep(settings.console_fold_interval)

    async def on_startup(app: web.Application) -> None:
        if settings.console_fold_interval > 0:
            loops.append(asyncio.create_task(folding()))

    async def on_shutdown(app: web.Application) -> None:
        console.closing.set()  # open streams end, so shutdown does not wait for them
        for task in loops:
            task.cancel()

    app.on_startup.append(on_startup)
    app.on_shutdown.insert(0, on_shutdown)
    return console
