"""Graceful shutdown: on SIGTERM the bot stops taking new turns, finishes the ones in flight
and their sends, then exits (App Service and Container Apps stop instances this way on every
deploy and scale-in). A real process, a real signal, the local connector."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path

import aiohttp

from tests import teams
from tests.app_process import free_port, running_app
from tests.connector import start_connector
from tests.harness import EXAMPLE_CONFIG

ROOT = Path(__file__).resolve().parents[1]


async def test_sigterm_finishes_the_turns_in_flight_then_exits(tmp_path):
    connector, runner = await start_connector()
    port = free_port()
    env = {**os.environ, "SWITCHBOARD_PORT": str(port), "SWITCHBOARD_HOST": "127.0.0.1",
           "SWITCHBOARD_DB_PATH": str(tmp_path / "bot.sqlite3"),
           "SWITCHBOARD_CONFIG": str(EXAMPLE_CONFIG), "SWITCHBOARD_SHUTDOWN_SECONDS": "20"}
    guest = teams.TeamsUser.make("Sam Slow")
    try:
        with running_app([sys.executable, "app.py"], cwd=ROOT, env=env, port=port) as app:
            # Teams is slow today: each message the bot posts takes a second to be taken
            connector.slow = {guest.conversation_id: 1.0}
            url = f"http://127.0.0.1:{port}/api/messages"
            async with aiohttp.ClientSession() as http:
                turn = asyncio.create_task(http.post(url, json=teams.message(
                    guest, connector.url, "hi")))
                await asyncio.sleep(0.5)  # the turn is under way: its first send is out
                started = time.monotonic()
                app.process.send_signal(signal.SIGTERM)
                await asyncio.sleep(0.3)
                # no new turns: the listening socket is closed
                late = teams.message(teams.TeamsUser.make("Late"), connector.url, "hi")
                try:
                    async with aiohttp.ClientSession() as other, other.post(
                            url, json=late) as answer:
                        refused = answer.status >= 500
                except aiohttp.ClientError:
                    refused = True
                assert refused, "a new turn was taken after SIGTERM"
                response = await turn
                assert response.status in (200, 201)
                response.release()
            code = await asyncio.to_thread(app.process.wait, 30)
            took = time.monotonic() - started
    finally:
        await runner.cleanup()
    assert code == 0, app.stderr[-2000:]
    said = "\n".join(s.all_text() for s in connector.to(guest.conversation_id))
    # both of the turn's messages reached the guest, once each
    assert said.count("welcome to the Service Desk") == 1, said
    assert said.count("What do you need help with today") == 1, said
    # it waited for the turn (two sends of a second each), and no longer
    assert 1.0 <= took < 15, took
