"""How long the bot keeps a tiny request waiting: an event-loop stall probe, its own process.

    python bench/stall_probe.py --url http://127.0.0.1:PORT --seconds 20 --out probe.json

Every 20 ms (`--every`) it sends, one at a time, `GET /healthz` (the bot answers after a
store ping, which runs in the store's reader thread, or on Cosmos over HTTP) and, on a second
connection, `GET /api/messages` (405 from aiohttp's router: the event loop alone, no handler,
no store). A request sent while the loop is busy is answered when the loop is free again,
so the longest answer is the longest stall (plus about a millisecond of loopback HTTP). It
runs in its own process so that the load generator's own busy loop does not add to what it
measures. It stops after `--seconds` or on SIGTERM, and writes its figures to `--out`.

`--control URL` probes a second server the same way: a bare aiohttp server pinned to the
bot's core, which does nothing, so its longest answer is what the machine alone (other
processes on that core, the scheduler) adds; a stall the bot causes shows in the bot's
figures and not in the control's.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import time

import aiohttp

PATHS = {"healthz": "/healthz", "loop": "/api/messages"}


async def probe(http: aiohttp.ClientSession, url: str, every: float, stop: asyncio.Event,
                out: list[tuple[float, float, int]]) -> None:
    """(sent at, ms, status) for each request; one in flight; the next tick after an answer."""
    start = time.perf_counter()
    tick = start
    while not stop.is_set():
        sent = time.perf_counter()
        try:
            async with http.get(url) as resp:
                await resp.read()
                status = resp.status
        except (aiohttp.ClientError, TimeoutError):
            status = 0
        out.append((sent - start, 1000 * (time.perf_counter() - sent), status))
        tick = max(tick + every, time.perf_counter())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), tick - time.perf_counter())


async def main(url: str, seconds: float, every: float, path: str, control: str | None) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.call_later(seconds, stop.set)
    targets = {name: url + route for name, route in PATHS.items()}
    if control:
        targets["control"] = control + PATHS["loop"]
    results: dict[str, list[tuple[float, float, int]]] = {name: [] for name in targets}
    timeout = aiohttp.ClientTimeout(total=30)
    async with contextlib.AsyncExitStack() as stack:
        sessions = [await stack.enter_async_context(aiohttp.ClientSession(timeout=timeout))
                    for _ in targets]
        await asyncio.gather(*(probe(http, target, every, stop, results[name])
                               for http, (name, target) in zip(sessions, targets.items(),
                                                               strict=True)))
    with open(path, "w") as f:  # noqa: ASYNC230 (once, at the end)
        json.dump(results, f)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--every", type=float, default=0.02)
    parser.add_argument("--out", required=True)
    parser.add_argument("--control", default=None,
                        help="also probe GET /api/messages of this server (a bare aiohttp "
                             "server on the bot's core: what the machine alone stalls)")
    args = parser.parse_args()
    asyncio.run(main(args.url, args.seconds, args.every, args.out, args.control))
