"""What a turn costs in store round trips, on the path the guest waits on (issues 10, 11).

A guest turn: a read of the session and one write of its state, lines and messages due
before the first message goes out. A transfer: at most six, the same with a 1,000-line
transcript. (Marking messages delivered comes after they are on their way.)"""

from __future__ import annotations

import time

from app import SESSIONS
from storage.documents import DocumentStore
from storage.models import Direction, TranscriptEntry
from tests import teams
from tests.faults import FaultyStore, Plan
from tests.harness import BotServer, Chat, FakeClock, settings_for

WEDNESDAY_10_UTC = 1_768_989_600.0


class Timed(FaultyStore):
    """Every store call, with when it returned (never kills: a plan without a step)."""

    def __init__(self, inner: DocumentStore) -> None:
        super().__init__(inner, Plan())
        self.calls: list[tuple[float, str]] = []

    async def _call(self, what, coro):
        result = await super()._call(what, coro)
        self.calls.append((time.monotonic(), what))
        return result


def _before_first_send(store: Timed, connector, conversation: str, since: float) -> list[str]:
    first = min(s.at for s in connector.to(conversation) if s.at >= since)
    return [what for at, what in store.calls if since <= at <= first]


async def test_a_guest_turn_reads_once_and_writes_once_before_answering(tmp_path, make_docs,
                                                                        connector):
    store = Timed(make_docs())
    server = await BotServer(settings_for(tmp_path), docs=store,
                             clock=FakeClock(WEDNESDAY_10_UTC)).start()
    try:
        chat = Chat(teams.TeamsUser.make("Cora Cost"), server, connector)
        await chat.say("hi")
        since = time.monotonic()
        await chat.answer("The printer on floor 2 jams")
        calls = _before_first_send(store, connector, chat.user.conversation_id, since)
        assert calls == ["read tenant_data", "batch tenant_data"], calls
    finally:
        await server.stop()


async def test_a_transfer_costs_at_most_six_round_trips_whatever_the_transcript(
        tmp_path, make_docs, connector):
    store = Timed(make_docs())
    server = await BotServer(settings_for(tmp_path), docs=store,
                             clock=FakeClock(WEDNESDAY_10_UTC)).start()
    try:
        costs = []
        for lines in (0, 1000):
            chat = Chat(teams.TeamsUser.make(f"Tess {lines}"), server, connector)
            await chat.say("hi")
            await chat.answer("My payslip is wrong")
            await chat.press("I still need help")
            if lines:  # a long chat before the transfer
                sessions = server.app[SESSIONS]
                session = await sessions.live(chat.user.conversation_id)
                for _ in range(0, lines, 90):
                    entries = [TranscriptEntry(
                        session_id=session.id, tenant_id=session.tenant_id,
                        seq=session.transcript_count + i, direction=Direction.IN,
                        sender="guest", text=f"line {i}") for i in range(90)]
                    session.transcript_count += 90
                    session = await sessions.save(session, entries)
            since = time.monotonic()
            said = await chat.press("HR")
            assert any("Moving you from Service Desk to HR" in s.all_text() for s in said)
            calls = _before_first_send(store, connector, chat.user.conversation_id, since)
            costs.append(len(calls))
        assert costs[0] == costs[1] <= 6, costs
    finally:
        await server.stop()
