"""A guest who waits: a crash in the turn that starts their chat or transfers them, or in
the recovery that finishes the transfer, never leaves them without their next prompt.

The fault harness (tests/test_faults.py) lets the guest act after every step whether or not
their prompt came, and their next action starts the receiving pipeline; and a restarted
instance's start-up sweep finishes what it left. The kill drill found the gap they hide
(Cosmos, two instances): Teams redelivered the press to the other instance, which finished
the transfer and sent its card, saw the press was handled, and stopped; HR's first question
never came. Here two instances share the store, the guest does nothing after the press, one
instance dies at every point of the transfer, and the other gets the redelivery (or only runs
its sweep, when Teams gave up; then again once the dead one's leases ran out). Then the same
with a second crash at every point of that recovery, followed by a restart and the sweep.
The drill also found a guest's first message redelivered to the other instance while the dead
one's start was still in its lease: it failed as "being started" by the dead process, and
the guest never got a welcome.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import pytest

from cards.actionable import actionable
from tests.connector import start_connector
from tests.harness import FakeClock
from tests.test_faults import SCRIPTS, START, World, _signature, fresh_store  # noqa: F401

SCRIPT = SCRIPTS["agent_chat"]
LEASE = 60.0  # the delivery lease (settings: SWITCHBOARD_DELIVERY_LEASE_SECONDS)
TRANSFER_CARD = "being transferred"
TRANSFER = "guest picks IT"


def _index(step: str) -> int:
    return next(i for i, (name, _) in enumerate(SCRIPT) if name == step)


def _prompts(world: World) -> set[tuple[str, str, str]]:
    return {_signature(s) for s in world.connector.sent
            if s.how != "update" and any(actionable(c) for c in s.cards)}


def _points(calls: list[str]) -> list[int]:
    return [0, *(k for k, call in enumerate(calls, 1)
                 if not call.startswith(("read ", "query ")))]


async def _before(world: World, step: str = TRANSFER) -> None:
    for _, play in SCRIPT[:_index(step)]:
        await play(world)


async def _killed_at(world: World, at: int, step: str = TRANSFER) -> dict[str, Any]:
    """What the guest does at `step`, its process killed after `at` calls (it stays dead)."""
    before = len(world.plan.steps)
    if at:
        world.plan.at = before + at
    else:
        world.plan.dead = True
    activity = await SCRIPT[_index(step)][1](world)
    assert activity is not None
    await world.stop()
    return activity


@dataclass
class Desk:
    """Two instances of the bot on one store, one connector, one clock."""

    a: World
    b: World
    runner: Any

    @classmethod
    async def open(cls, tmp_path, make_docs, people=None) -> Desk:
        connector, runner = await start_connector()
        clock = FakeClock(START)
        a = World(tmp_path, make_docs, connector, clock=clock, **({"people": people} if people
                                                                   else {}))
        b = World(tmp_path, make_docs, connector, clock=clock, people=a.people)
        await a.start()
        await b.start()
        return cls(a, b, runner)

    async def close(self) -> None:
        await self.a.stop()
        await self.b.stop()
        await self.runner.cleanup()

    async def after_the_leases(self) -> None:
        """Once what the dead instance leased has run out: the other's sweep."""
        assert self.b.server is not None
        self.a.clock.advance(LEASE + 1)
        await self.b.server.sweep()

    def waiting_for(self, prompts: set[tuple[str, str, str]]) -> set[tuple[str, str, str]]:
        """The prompts the guest has not got, or got before the transfer card (which a crash
        may cost: informational, it may have been in flight when the process died)."""
        said = [_signature(s) for s in self.a.connector.sent if s.how != "update"]
        card = next((i for i, sig in enumerate(said) if TRANSFER_CARD in sig[2]), 0)
        return {sig for sig in prompts if sig not in said[card:]}


async def _golden(tmp_path, make_docs, step: str = TRANSFER) -> tuple[set, list[str], dict]:
    desk = await Desk.open(tmp_path, make_docs)
    try:
        await _before(desk.a, step)
        before, earlier = len(desk.a.plan.steps), _prompts(desk.a)
        await SCRIPT[_index(step)][1](desk.a)
        prompts = _prompts(desk.a) - earlier  # what the press brings the guest to act on
        assert prompts
        return prompts, desk.a.plan.steps[before:], desk.a.people
    finally:
        await desk.close()


def _lanes(request) -> asyncio.Semaphore:
    return asyncio.Semaphore(4 if "cosmos" in request.node.name else 1)


@pytest.mark.timeout(600)
@pytest.mark.parametrize(("step", "teams_redelivers"), [
    ("guest says hi", True), (TRANSFER, True), (TRANSFER, False),
], ids=["start-redelivered", "transfer-redelivered", "transfer-sweep"])
async def test_after_a_crash_the_next_prompt_comes_without_a_word(
    tmp_path, fresh_store, step, teams_redelivers, request  # noqa: F811
):
    prompts, calls, people = await _golden(tmp_path, fresh_store(), step)
    lanes = _lanes(request)

    async def run(at: int) -> None:
        async with lanes:
            desk = await Desk.open(tmp_path, fresh_store(), people)
            try:
                await _before(desk.a, step)
                activity = await _killed_at(desk.a, at, step)
                assert desk.b.server is not None
                if teams_redelivers:
                    await desk.b.post(activity)
                    if not _leased_elsewhere(calls, at, step):
                        # nothing the dead one was sending: the redelivery itself finishes
                        assert not desk.waiting_for(prompts), (at, calls[:at])
                else:
                    await desk.b.server.sweep()
                await desk.after_the_leases()
                waiting = desk.waiting_for(prompts)
                assert not waiting, f"killed after {at} of {len(calls)} calls " \
                                    f"({calls[:at]}): the guest still waits for {waiting}"
            finally:
                await desk.close()

    # without a redelivery, a press that never reached the bot (killed at 0) is simply lost
    points = _points(calls) if teams_redelivers else _points(calls)[1:]
    await asyncio.gather(*(run(at) for at in points))


# the call of each step after which the messages the guest is owed are written, leased to
# the process (the start: the session's first write; the transfer: the receiving session's)
OWING_WRITE = {"guest says hi": 1, TRANSFER: 2}


def _leased_elsewhere(calls: list[str], at: int, step: str) -> bool:
    """After `at` calls, had the dead instance written what the guest is owed, leased to
    itself, and not finished the turn? (Then the other instance waits out the lease.)"""
    writes = [i for i, call in enumerate(calls, 1) if call.startswith("batch ")]
    return writes[OWING_WRITE[step] - 1] <= at < len(calls)


@pytest.mark.timeout(900)
async def test_a_second_crash_while_a_transfer_is_recovered_is_finished_after_a_restart(
    tmp_path, fresh_store, request  # noqa: F811
):
    prompts, calls, people = await _golden(tmp_path, fresh_store())
    lanes = _lanes(request)

    async def recovery_calls(at: int) -> list[str]:
        """What the redelivery after a kill at `at` does, counted: where to kill it again."""
        desk = await Desk.open(tmp_path, fresh_store(), people)
        try:
            await _before(desk.a)
            activity = await _killed_at(desk.a, at)
            before = len(desk.b.plan.steps)
            await desk.b.post(activity)
            return desk.b.plan.steps[before:]
        finally:
            await desk.close()

    async def run(at: int, again: int) -> None:
        async with lanes:
            desk = await Desk.open(tmp_path, fresh_store(), people)
            try:
                await _before(desk.a)
                activity = await _killed_at(desk.a, at)
                b = desk.b
                before = len(b.plan.steps)
                b.plan.at = before + again
                await b.post(activity)
                await b.restart()  # the same instance: its start-up sweep runs
                await desk.after_the_leases()
                waiting = desk.waiting_for(prompts)
                assert not waiting, (
                    f"killed after {at} calls of the transfer ({calls[:at]}), then after "
                    f"{again} of its recovery: the guest still waits for {waiting}")
            finally:
                await desk.close()

    # the kills that leave the chat mid-transfer: the press was taken, its turn unfinished
    plan: list[tuple[int, int]] = []
    for at in _points(calls)[1:-1]:
        async with lanes:
            redelivery = await recovery_calls(at)
        plan.extend((at, again) for again in _points(redelivery)[1:])
    await asyncio.gather(*(run(at, again) for at, again in plan))
    assert plan


async def test_a_sweep_after_chats_without_a_crash_recovers_nothing(tmp_path, fresh_store):  # noqa: F811
    """A chat's last messages stay listed as owed (marked sent) until its next write; the
    sweep drops them once their lease is over, and says it recovered nothing (it used to
    warn of chats "a crash had left owing" for every finished chat)."""
    desk = await Desk.open(tmp_path, fresh_store())
    try:
        await _before(desk.a)
        await SCRIPT[_index(TRANSFER)][1](desk.a)
        assert desk.b.server is not None
        desk.a.clock.advance(LEASE + 1)
        assert await desk.b.server.sweep() == 0
        assert await desk.b.server.sweep() == 0
    finally:
        await desk.close()
