"""A lean stand-in for the Teams Bot Connector, for the load benchmark (its own process).

    python bench/lean_connector.py --port P --control-port C

Port P plays the connector for the bot under test: POST/PUT of activities answer
`{"id": ...}` at once, GET of a member answers a member. It parses nothing: it counts
requests, and the TCP connections it accepted (`Server.connection_made`: one call per
accepted connection), so the benchmark can say whether the bot reuses pooled connections.

While `keep` is on, the raw body of each activity is also kept per conversation, so the
load generator can read what the bot sent to its guest (GET /drain/{conversation} on the
control port answers them as a JSON array and forgets them). Kept bodies are bytes, never
parsed here.

Port C is the control port (the load generator's own traffic, counted apart):
GET /stats, POST /reset?keep=0|1, GET /drain/{conversation}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal

from aiohttp import web

_JSON = "application/json"


class CountingServer(web.Server):
    """aiohttp's low-level server, counting the connections it accepts."""

    accepted = 0

    def connection_made(self, handler, transport) -> None:
        self.accepted += 1
        super().connection_made(handler, transport)


class Connector:
    def __init__(self) -> None:
        self.keep = False
        self.kept: dict[str, list[bytes]] = {}
        self.next_id = 0
        self.counts = {"activities": 0, "updates": 0, "members": 0, "other": 0}
        self.bot_server = CountingServer(self.handle)
        self.control_server = web.Server(self.control)

    # -- what the bot talks to -------------------------------------------------------

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        # /v3/conversations/{conversation}/activities[/{id}] or .../members/{member}
        parts = request.path.split("/")
        body = await request.read()
        if len(parts) >= 5 and parts[1] == "v3" and parts[2] == "conversations":
            conversation, what = parts[3], parts[4]
            if what == "activities" and request.method in ("POST", "PUT"):
                if request.method == "PUT":
                    self.counts["updates"] += 1
                    activity_id = parts[5] if len(parts) > 5 else "?"
                else:
                    self.counts["activities"] += 1
                    self.next_id += 1
                    activity_id = f"c{self.next_id}"
                if self.keep:
                    self.kept.setdefault(conversation, []).append(body)
                return web.Response(body=b'{"id":"%s"}' % activity_id.encode(),
                                    content_type=_JSON)
            if what == "members" and request.method == "GET":
                self.counts["members"] += 1
                member = parts[5] if len(parts) > 5 else "someone"
                return web.Response(
                    body=json.dumps({"id": member, "name": "Bench Guest"}).encode(),
                    content_type=_JSON,
                )
            if what == "activities" and request.method == "DELETE":
                self.counts["updates"] += 1
                return web.Response(status=200)
        self.counts["other"] += 1
        return web.Response(status=404)

    # -- what the load generator talks to --------------------------------------------

    async def control(self, request: web.BaseRequest) -> web.StreamResponse:
        path = request.path
        if path.startswith("/drain/"):
            bodies = self.kept.pop(path[len("/drain/"):], [])
            return web.Response(body=b"[" + b",".join(bodies) + b"]", content_type=_JSON)
        if path == "/stats":
            stats = {**self.counts, "accepted": self.bot_server.accepted,
                     "open": len(self.bot_server.connections),
                     "kept_conversations": len(self.kept)}
            return web.json_response(stats)
        if path == "/reset" and request.method == "POST":
            for key in self.counts:
                self.counts[key] = 0
            self.bot_server.accepted = 0
            self.kept.clear()
            self.keep = request.query.get("keep", "0") == "1"
            return web.json_response({"keep": self.keep})
        return web.Response(status=404)


async def main(port: int, control_port: int) -> None:
    connector = Connector()
    bot_runner = web.ServerRunner(connector.bot_server, access_log=None)
    control_runner = web.ServerRunner(connector.control_server, access_log=None)
    await bot_runner.setup()
    await control_runner.setup()
    await web.TCPSite(bot_runner, "127.0.0.1", port, backlog=1024).start()
    await web.TCPSite(control_runner, "127.0.0.1", control_port, backlog=1024).start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await bot_runner.cleanup()
    await control_runner.cleanup()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--control-port", type=int, required=True)
    args = parser.parse_args()
    asyncio.run(main(args.port, args.control_port))
