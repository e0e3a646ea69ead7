"""The fault-injection harness (tests/test_faults.py) on a chat that opens a ticket, hands the
guest to an agent and resolves the ticket when the chat ends (tests/e2e_configs/tickets.yaml):
the process is killed at every store call, every send and every HTTP call of every step, then
restarted, and Teams redelivers (or the timer poll runs again).

Besides test_faults' checks (nothing lost, nothing doubled), each run must leave exactly one
ticket, resolved, with its number on the session, and every request for it must carry the same
Idempotency-Key. A kill right after the ticket's call (before the session's write) makes the
call again after the restart, with the same key: this endpoint honours the key (as an endpoint
must for that to be safe), so there is still one ticket.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from app import HTTP_STEPS, OUTBOUND
from pipelines.http_steps import idempotency_key
from tests import test_faults
from tests.connector import start_connector
from tests.faults import FaultyStore, Plan, kill_calls, kill_sends
from tests.harness import BotServer, settings_for
from tests.test_faults import World, _check, _killed_drops_the_connection, _play
from tests.ticket_desk import TicketDesk

TICKETS = Path(__file__).parent / "e2e_configs" / "tickets.yaml"
# a fresh database per run, on both stores
fresh_store = test_faults.fresh_store

SCRIPT = [
    ("alice installs", lambda w: w.install("alice")),
    ("guest says hi", lambda w: w.say("guest", "hi")),
    ("guest answers", lambda w: w.answer("guest", "My payslip is wrong")),
    ("ticket call", lambda w: w.timers()),
    ("guest asks for a person", lambda w: w.answer("guest", "Talk to someone")),
    ("offer round", lambda w: w.timers()),
    ("alice accepts", lambda w: w.press("alice", "Accept")),
    ("alice ends", lambda w: w.say("alice", "end")),
    ("ticket resolved", lambda w: w.timers()),
]


class TicketWorld(World):
    """A World whose bot calls its own ticket desk (a config naming the desk's address)."""

    config_path: str = ""

    async def start(self, plan: Plan | None = None) -> None:
        self.plan = plan or Plan()
        settings = settings_for(self.tmp_path, config_path=self.config_path,
                                instance_name=self.instance, sends_per_conversation=1000)
        self.server = await BotServer(settings, docs=FaultyStore(self.make_docs(), self.plan),
                                      clock=self.clock,
                                      middlewares=[_killed_drops_the_connection]).start()
        kill_sends(self.server.app[OUTBOUND], self.plan)
        kill_calls(self.server.app[HTTP_STEPS], self.plan)


def config_for(tmp_path: Path, desk: TicketDesk) -> str:
    text = TICKETS.read_text().replace("url_env: TICKETS_URL\n            path: ",
                                       f"url: {desk.url}")
    path = tmp_path / f"tickets-{desk.port}.yaml"
    path.write_text(text)
    return str(path)


async def run(tmp_path, make_docs, people=None, **kill) -> tuple:
    desk = await TicketDesk(honour_keys=True).start()
    connector, runner = await start_connector()
    try:
        world = TicketWorld(tmp_path, make_docs, connector,
                            **({"people": people} if people else {}))
        world.config_path = config_for(tmp_path, desk)
        outcome = await _play(world, SCRIPT, **kill)
        return world, outcome, desk
    finally:
        await runner.cleanup()
        await desk.stop()


def check_tickets(desk: TicketDesk, outcome, where: str) -> None:
    [ticket] = desk.created()
    assert ticket["state"] == "6", f"{where}: the ticket was not resolved: {ticket}"
    [session] = [s for s in outcome.sessions if s.tenant_id == "hr"]
    assert session.metadata.get("Answers.Ticket") == ticket["number"], where
    keys = {r.headers.get("Idempotency-Key") for r in desk.posts()}
    assert keys == {idempotency_key(session.id, "ticket")}, f"{where}: {keys}"


@pytest.mark.timeout(900)
async def test_a_kill_at_every_point_leaves_one_ticket_resolved(tmp_path, fresh_store,
                                                                monkeypatch, request):
    monkeypatch.setenv("TICKETS_AUTH", TicketDesk().auth)
    world, golden, desk = await run(tmp_path, fresh_store())
    assert all(golden.steps)
    assert sum(call.startswith("call ") for calls in golden.steps for call in calls) == 2
    check_tickets(desk, golden, "golden run")
    assert len(desk.posts()) == 1
    points = [(index, at) for index, calls in enumerate(golden.steps)
              for at in [0, *(k for k, call in enumerate(calls, 1)
                              if not call.startswith(("read ", "query ")))]]
    lanes = asyncio.Semaphore(4 if "cosmos" in request.node.name else 1)
    repeated = []

    async def one(index: int, at: int) -> None:
        async with lanes:
            _, outcome, run_desk = await run(tmp_path, fresh_store(), world.people,
                                             kill_step=index, at=at)
        calls = golden.steps[index]
        where = (f"killed at step {index} ({SCRIPT[index][0]}) after {at} of {len(calls)} "
                 f"calls ({calls[at - 1] if at else 'none'})")
        _check(golden, outcome, where)
        check_tickets(run_desk, outcome, where)
        if len(run_desk.posts()) > 1:
            repeated.append(where)

    await asyncio.gather(*(one(index, at) for index, at in points))
    # the kill right after the ticket's call is among the points: the call was made again,
    # with the same key, and this endpoint answered it with the same ticket
    assert any("call POST endpoint" in where for where in repeated), repeated
