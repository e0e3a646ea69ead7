"""The fault-injection harness: kill the bot at every store call and every send of every path.

Three scripts play a whole help desk through the real app (tests/e2e_configs/faults.yaml):
guests answering, a transfer, agents offered chats by timers, accepting, relaying, ending,
transferring, a hunt moving on, a maximum wait; skills and an escalation tier joining, a
consult with its private lines and the warm transfer that ends it. First each script runs
once without faults (the golden run), counting the store calls and sends of each step. Then,
for every step and every point k in it (0 = before its first call, k = after its k-th), a
fresh run plays the script up to that step, kills the process at k (tests/faults.py),
restarts the bot (same instance, a new process), has Teams redeliver the activity (or the
timer poll run again), plays the rest of the script, and checks:

- no answer lost: every answer the golden run stored is stored;
- exactly one session per conversation is live at the end or none, as in the golden run,
  and every transferred session carries the six keys, right;
- no informational message sent twice, and at most the one message that may have been in
  flight when the process died is missing (an informational one);
- nobody left without a message they must act on: every card with inputs or buttons of the
  golden run arrived, at most once more;
- a chat that ended is closed, in the state the golden run closed it in; nothing is owed.

Enumerated, not sampled, on both backends.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from app import OUTBOUND, SESSIONS
from cards.actionable import actionable
from cards.text import card_text
from storage.models import Session
from storage.sessions import SessionStore
from tests import teams
from tests.agent_desk import ALICE, BOB, CAROL, DAVE, person
from tests.connector import Connector, Sent, start_connector
from tests.faults import FaultyStore, Killed, Plan, kill_sends
from tests.harness import BotServer, FakeClock, settings_for
from tests.routing_desk import ERIN

FAULTS = Path(__file__).parent / "e2e_configs" / "faults.yaml"
START = 1_768_989_600.0  # a Wednesday, 10:00 UTC

SIX_KEYS = [f"Session.Transferred{side}.{what}" for side in ("From", "To")
            for what in ("SessionId", "TenantId", "TenantName")]


@web.middleware
async def _killed_drops_the_connection(request: web.Request, handler):
    """A killed process answers nothing: its connections drop."""
    try:
        return await handler(request)
    except Killed:
        if request.transport is not None:
            request.transport.abort()
        raise web.HTTPInternalServerError() from None


@dataclass
class World:
    tmp_path: Path
    make_docs: Callable[[], Any]
    connector: Connector
    instance: str = field(default_factory=lambda: f"fault-{uuid.uuid4().hex[:6]}")
    clock: FakeClock = field(default_factory=lambda: FakeClock(START))
    plan: Plan = field(default_factory=Plan)
    server: BotServer | None = None
    people: dict[str, teams.TeamsUser] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.people:
            return
        self.people = {
            "guest": teams.TeamsUser("Gus Guest", "cccccccc-0000-0000-0000-000000000001",
                                     f"a:1guest-{uuid.uuid4().hex[:8]}"),
            "alice": person(*ALICE), "bob": person(*BOB),
            "carol": person(*CAROL), "dave": person(*DAVE), "erin": person(*ERIN),
        }

    async def start(self, plan: Plan | None = None) -> None:
        self.plan = plan or Plan()
        # Teams' throttling (7 a second per chat) is not what this is about: lifted
        settings = settings_for(self.tmp_path, config_path=str(FAULTS),
                                instance_name=self.instance, sends_per_conversation=1000)
        self.server = await BotServer(settings, docs=FaultyStore(self.make_docs(), self.plan),
                                      clock=self.clock,
                                      middlewares=[_killed_drops_the_connection]).start()
        kill_sends(self.server.app[OUTBOUND], self.plan)

    async def stop(self) -> None:
        if self.server is not None:
            with contextlib.suppress(BaseException):
                await self.server.stop()
            self.server = None

    async def restart(self) -> None:
        """The same instance, a new process: what was in memory is gone."""
        await self.stop()
        await self.start()

    async def post(self, activity: dict[str, Any]) -> None:
        assert self.server is not None
        with contextlib.suppress(aiohttp.ClientError, TimeoutError):
            await self.server.post(activity, timeout=aiohttp.ClientTimeout(total=20))

    # -- what people do ----------------------------------------------------------------

    def _last_card(self, who: str, title: str | None) -> dict[str, Any]:
        conversation = self.people[who].conversation_id
        for sent in reversed(self.connector.to(conversation)):
            for card in sent.cards:
                if any(title is None or a.get("title") == title for a in teams._actions(card)):
                    return card
        raise AssertionError(f"{who} has no card with a {title!r} button")

    async def say(self, who: str, text: str) -> dict[str, Any]:
        activity = teams.message(self.people[who], self.connector.url, text)
        await self.post(activity)
        return activity

    async def install(self, who: str) -> dict[str, Any]:
        activity = teams.install(self.people[who], self.connector.url)
        await self.post(activity)
        return activity

    async def press(self, who: str, title: str | None, **inputs: Any) -> dict[str, Any]:
        card = self._last_card(who, title)
        action = teams.find_action(card, title)
        build = teams.execute if action["type"] == "Action.Execute" else teams.submit
        activity = build(self.people[who], self.connector.url, card, inputs, title)
        await self.post(activity)
        return activity

    async def answer(self, who: str, text: str) -> dict[str, Any]:
        return await self.press(who, None, answer=text)

    async def timers(self) -> None:
        assert self.server is not None
        await self.server.fire_timers()


Step = Callable[[World], Awaitable[dict[str, Any] | None]]


def advance(seconds: float) -> Step:
    async def step(world: World) -> None:
        world.clock.advance(seconds)
        await world.timers()

    return step


SCRIPTS: dict[str, list[tuple[str, Step]]] = {
    # a guest through a transfer to IT, two agents, accept, relay both ways, end, rating
    "agent_chat": [
        ("alice installs", lambda w: w.install("alice")),
        ("bob installs", lambda w: w.install("bob")),
        ("guest says hi", lambda w: w.say("guest", "hi")),
        ("guest answers", lambda w: w.answer("guest", "My laptop will not boot")),
        ("guest picks IT", lambda w: w.press("guest", "IT")),
        ("guest describes", lambda w: w.answer("guest", "Black screen after the update")),
        ("offer round", lambda w: w.timers()),
        ("alice accepts", lambda w: w.press("alice", "Accept")),
        ("guest writes", lambda w: w.say("guest", "Any news?")),
        ("alice writes", lambda w: w.say("alice", "Hold the power button")),
        ("alice ends", lambda w: w.say("alice", "end")),
        ("guest rates", lambda w: w.answer("guest", "5")),
    ],
    # an agent's transfer to HR, a hunt moving on, a presence change, the maximum wait
    "transfer_and_timeouts": [
        ("alice installs", lambda w: w.install("alice")),
        ("carol installs", lambda w: w.install("carol")),
        ("dave installs", lambda w: w.install("dave")),
        ("guest says hi", lambda w: w.say("guest", "hi")),
        ("guest answers", lambda w: w.answer("guest", "Payslip is wrong")),
        ("guest picks IT", lambda w: w.press("guest", "IT")),
        ("guest describes", lambda w: w.answer("guest", "Need payroll access")),
        ("offer round", lambda w: w.timers()),
        ("alice accepts", lambda w: w.press("alice", "Accept")),
        ("alice transfers", lambda w: w.say("alice", "transfer HR")),
        ("hunt offers", lambda w: w.timers()),
        ("accept timeout", advance(31)),
        ("dave goes away", lambda w: w.say("dave", "status away")),
        ("dave is back", lambda w: w.say("dave", "status available")),
        ("max wait", advance(120)),
    ],
    # skills and two tiers (Ops, then IT), an accept in tier 2, a consult of HR with private
    # lines both ways, the warm transfer to the consulted agent, who carries on and ends
    "tiers_and_consult": [
        ("erin installs", lambda w: w.install("erin")),
        ("alice installs", lambda w: w.install("alice")),
        ("carol installs", lambda w: w.install("carol")),
        ("guest says hi", lambda w: w.say("guest", "hi")),
        ("guest answers", lambda w: w.answer("guest", "The VPN is down")),
        ("guest picks Ops", lambda w: w.press("guest", "Ops")),
        ("offer round", lambda w: w.timers()),
        ("tier 2 joins", advance(60)),
        ("alice accepts", lambda w: w.press("alice", "Accept")),
        ("alice consults HR", lambda w: w.say("alice", "consult HR")),
        ("carol joins", lambda w: w.press("carol", "Accept")),
        ("alice asks privately", lambda w: w.say("alice", "A payroll question for you")),
        ("carol answers privately", lambda w: w.say("carol", "Send them over")),
        ("guest writes", lambda w: w.say("guest", "Hello?")),
        ("alice hands over", lambda w: w.say("alice", "transfer")),
        ("carol writes", lambda w: w.say("carol", "Hi, Carol from HR here")),
        ("carol ends", lambda w: w.say("carol", "end")),
    ],
}


# -- what a run leaves ------------------------------------------------------------------


@dataclass
class Outcome:
    messages: Counter[tuple[str, str, str]]
    actionable: set[tuple[str, str, str]]
    sessions: list[Session]
    # per step of the script: what the process did (store calls and sends), in order
    steps: list[list[str]]


def _signature(sent: Sent) -> tuple[str, str, str]:
    words = sent.text or "\n".join(card_text(c) for c in sent.cards)
    return (sent.conversation_id, sent.how, " ".join(words.split()))


async def _outcome(world: World, steps: list[list[str]]) -> Outcome:
    assert world.server is not None
    messages = Counter(_signature(s) for s in world.connector.sent)
    must_act = {_signature(s) for s in world.connector.sent
                if s.how != "update" and any(actionable(c) for c in s.cards)}
    store = SessionStore(world.server.app[SESSIONS].docs)
    sessions = [s for s in await store.list(limit=100)
                if s.conversation_id == world.people["guest"].conversation_id]
    return Outcome(messages, must_act, sessions, steps)


async def _play(world: World, script: list[tuple[str, Step]], *, kill_step: int | None = None,
                at: int | None = None) -> Outcome:
    """Play the script; at step `kill_step`, kill after `at` calls, restart, redeliver."""
    done: list[list[str]] = []
    await world.start()
    try:
        for index, (_, step) in enumerate(script):
            before = len(world.plan.steps)
            if index == kill_step:
                if at:
                    world.plan.at = before + at
                else:
                    world.plan.dead = True  # before anything of this step happened
                activity = None
                with contextlib.suppress(Killed):
                    activity = await step(world)
                if world.plan.dead:
                    await world.restart()
                    if activity is None:  # it was a timer's step: the poll runs again
                        with contextlib.suppress(AssertionError):
                            await world.timers()
                    else:  # Teams redelivers what it got no answer to
                        await world.post(activity)
                else:
                    world.plan.at = None
            else:
                await step(world)
            done.append(world.plan.steps[before:])
        assert world.server is not None
        await world.server.sweep()
        return await _outcome(world, done)
    finally:
        await world.stop()


def _check(golden: Outcome, run: Outcome, where: str) -> None:
    extra = {sig: n - golden.messages[sig] for sig, n in run.messages.items()
             if n > golden.messages[sig]}
    missing = {sig: golden.messages[sig] - run.messages[sig] for sig in golden.messages
               if run.messages[sig] < golden.messages[sig]}
    unexpected = {sig for sig in extra if sig not in golden.messages}
    assert not unexpected, f"{where}: messages the golden run never sent: {unexpected}"
    twice = {sig: n for sig, n in extra.items() if sig not in golden.actionable}
    assert not twice, f"{where}: informational messages sent twice: {twice}"
    assert sum(extra.values()) <= 1, f"{where}: more than one message resent: {extra}"
    lost_acting = {sig for sig in missing if sig in golden.actionable}
    assert not lost_acting, f"{where}: someone never got what they must act on: {lost_acting}"
    assert sum(missing.values()) <= 1, f"{where}: more than one message lost: {missing}"
    # the sessions: the same chats, in the same states, the same answers, the six keys
    summary = lambda outcome: sorted((s.tenant_id, s.state.value) for s in outcome.sessions)  # noqa: E731
    assert summary(run) == summary(golden), f"{where}: {summary(run)} != {summary(golden)}"
    assert sum(s.state.live for s in run.sessions) <= 1, where
    answers = {k: v for s in golden.sessions for k, v in s.metadata.items()
               if k.startswith("Answers.")}
    got = {k: v for s in run.sessions for k, v in s.metadata.items() if k.startswith("Answers.")}
    assert got == answers, f"{where}: answers {got} != {answers}"
    by_id = {s.id: s for s in run.sessions}
    for s in run.sessions:
        assert not s.owed, f"{where}: session {s.tenant_id} still owes {s.owed}"
        if s.hop_log:
            hop = s.hop_log[-1]
            keys = {k: s.metadata.get(k) for k in SIX_KEYS}
            assert all(keys.values()), f"{where}: {s.tenant_id} lacks transfer keys {keys}"
            source = by_id.get(keys["Session.TransferredFrom.SessionId"])
            assert source is not None and hop.from_session_id == source.id, where
            assert {k: source.metadata.get(k) for k in SIX_KEYS} == keys, where


@pytest.fixture(params=["embedded", "cosmos"])
async def fresh_store(request, tmp_path):
    """Makes a new, empty database for each run: `fresh_store()` -> a `make_docs` for it."""
    dropped: list[Any] = []
    if request.param == "embedded":
        from storage.embedded import EmbeddedStore

        def fresh() -> Callable[[], Any]:
            path = tmp_path / f"{uuid.uuid4().hex}.sqlite3"
            return lambda: EmbeddedStore(path)

        yield fresh
        return
    from storage.cosmos import CosmosStore

    server = request.getfixturevalue("cosmos_server")

    def fresh() -> Callable[[], Any]:
        name = f"faults-{uuid.uuid4().hex}"
        dropped.append(name)
        return lambda: CosmosStore(server.endpoint, name, key=server.key,
                                   connection_verify=False, max_retry_seconds=10.0)

    yield fresh
    for name in dropped:
        store = CosmosStore(server.endpoint, name, key=server.key, connection_verify=False)
        with contextlib.suppress(Exception):
            await store.open()
            await store.delete_database()
        await store.close()


@pytest.mark.timeout(900)
@pytest.mark.parametrize("script", list(SCRIPTS))
async def test_a_kill_at_every_point_of_every_step_loses_nothing_and_doubles_nothing(
    tmp_path, fresh_store, script, request
):
    steps = SCRIPTS[script]
    connector, runner = await start_connector()
    try:
        world = World(tmp_path, fresh_store(), connector)
        golden = await _play(world, steps)
    finally:
        await runner.cleanup()
    assert all(golden.steps)
    # after a read the process has changed nothing more than after the call before it: the
    # points that differ are a step's start, and after each of its writes and sends
    points = [(index, at) for index, calls in enumerate(golden.steps)
              for at in [0, *(k for k, call in enumerate(calls, 1)
                              if not call.startswith(("read ", "query ")))]]
    # runs are independent (each its own database, connector and clock): a few at once
    # keep the local Cosmos server busy while Python waits on it
    lanes = asyncio.Semaphore(4 if "cosmos" in request.node.name else 1)

    async def run(index: int, at: int) -> None:
        async with lanes:
            connector, runner = await start_connector()
            try:
                outcome = await _play(World(tmp_path, fresh_store(), connector,
                                            people=world.people),
                                      steps, kill_step=index, at=at)
            finally:
                await runner.cleanup()
            calls = len(golden.steps[index])
            _check(golden, outcome, f"{script}: killed at step {index} "
                                    f"({steps[index][0]}) after {at} of {calls} calls")

    await asyncio.gather(*(run(index, at) for index, at in points))
    assert len(points) >= len(steps) * 2
