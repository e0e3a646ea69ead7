"""The simulator's side of `http_request` stages: the call the bot would make, shown and not
sent (a dry run), or made (`--live`), through the same request building, URL guard and client
as the bot's.

A dry run shows the method, the URL, the headers (a secret as the name of the variable it comes
from, never its value) and the body, then goes on to the stage's `next` with what `store_as`
keeps left unset.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from pipelines.actions.http_request import TIMER_KIND
from pipelines.http_calls import CallResult, HttpClient, Outcome, OutgoingRequest
from pipelines.http_steps import HttpSteps
from storage.timers import NotYet, TimerStore

# calls run after one turn at most (a pipeline of http_request stages one after the other)
MAX_CALLS_PER_TURN = 20


def describe(request: OutgoingRequest) -> list[str]:
    lines = [f"{request.method} {request.url}"]
    for name, value in request.headers.items():
        if name in request.secret_headers:
            value = f"(the value of ${request.secret_headers[name]})"
        lines.append(f"{name}: {value}")
    if request.body:
        try:
            body = json.dumps(json.loads(request.body), indent=2, ensure_ascii=False)
        except ValueError:
            body = request.body.decode("utf-8", "replace")
        lines += ["", *body.splitlines()]
    return lines


class ShownCalls:
    """A caller for `HttpSteps` that prints each request, and sends it only when live."""

    def __init__(self, write: Callable[[str], None], live: bool) -> None:
        self.write = write
        self.live = live
        self.client = HttpClient() if live else None

    async def call(self, request: OutgoingRequest) -> CallResult:
        verb = "calls" if self.live else "would call"
        self.write(f"(http_request: the bot {verb})")
        for line in describe(request):
            self.write(f"    {line}")
        if self.client is None:
            self.write("(dry run: not sent, --live sends it; the pipeline goes on to `next` and "
                       "what `store_as` keeps stays unset)")
            return CallResult(Outcome.NOT_SENT)
        result = await self.client.call(request)
        status = f"HTTP {result.status}" if result.status else "no answer"
        self.write(f"(http_request: {result.outcome.value}, {status}, {result.attempts} "
                   f"attempt{'s' if result.attempts != 1 else ''}, {result.seconds:g} s"
                   + (f": {result.reason}" if result.reason else "") + ")")
        return result

    async def close(self) -> None:
        if self.client is not None:
            await self.client.close()


async def run_calls(timers: TimerStore, steps: HttpSteps) -> int:
    """Run the calls that are due, as the bot's timer poll would; how many ran."""
    ran = 0
    for _ in range(MAX_CALLS_PER_TURN):
        due = [t for t in await timers.due() if t.kind == TIMER_KIND]
        if not due:
            break
        for timer in due:
            claimed = await timers.claim(timer)
            if claimed is None:
                continue
            try:
                await steps.on_timer(claimed)
            except NotYet:
                await timers.release(claimed)
                continue
            await timers.finish(claimed)
            ran += 1
    return ran
