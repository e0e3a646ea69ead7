"""The HTTP ceiling: a bare aiohttp handler that does what a bot's turn must, and no more.

    python bench/servers/bare.py --port P

POST /api/messages: read the activity, post one reply to its serviceUrl (the connector)
through one pooled aiohttp session, answer 201. No botbuilder, no store.
"""

from __future__ import annotations

import argparse
import json
from urllib.parse import quote

import aiohttp
from aiohttp import web

HTTP = web.AppKey("http", aiohttp.ClientSession)


async def messages(request: web.Request) -> web.Response:
    activity = await request.json()
    conversation = activity["conversation"]["id"]
    url = (f"{activity['serviceUrl'].rstrip('/')}/v3/conversations/"
           f"{quote(conversation, safe='')}/activities/{quote(activity['id'], safe='')}")
    reply = {
        "type": "message",
        "text": f"Echo: {activity.get('text', '')}",
        "from": activity["recipient"],
        "recipient": activity["from"],
        "conversation": activity["conversation"],
        "replyToId": activity["id"],
    }
    async with request.app[HTTP].post(url, data=json.dumps(reply),
                                      headers={"Content-Type": "application/json"}) as resp:
        await resp.read()
        if resp.status >= 300:
            return web.Response(status=502)
    return web.Response(status=201)


async def open_http(app: web.Application) -> None:
    app[HTTP] = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=200, limit_per_host=100, keepalive_timeout=60))


async def close_http(app: web.Application) -> None:
    await app[HTTP].close()


def make_app() -> web.Application:
    app = web.Application()
    app.router.add_post("/api/messages", messages)
    app.on_startup.append(open_http)
    app.on_cleanup.append(close_http)
    return app


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    web.run_app(make_app(), host="127.0.0.1", port=args.port, print=None, access_log=None)
