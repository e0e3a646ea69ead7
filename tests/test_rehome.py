"""Rehoming under faults, races and long transcripts, on both backends."""

from __future__ import annotations

import asyncio

import pytest

from storage.models import Delivery, Direction, Session, SessionState, TranscriptEntry
from storage.rehome import (
    STEPS,
    TransferRefused,
    finish_if_half_done,
    finish_rehome,
    half_done,
    mark_intent,
)
from storage.sessions import SessionStore, new_session_id


async def rehome(store: SessionStore, source: Session, **intent) -> Session:
    return await finish_rehome(store, await mark_intent(store, source, **intent))


async def recover_transfers(store: SessionStore) -> list[Session]:
    """What the sweep does for transfers (pipelines/recovery.py adds delivery)."""
    return [await finish_if_half_done(store, s) for s in await half_done(store)]


async def settled(store: SessionStore, conversation_id: str) -> Session | None:
    """What the next activity does before it is handled: finish a half-done transfer."""
    session = await store.current(conversation_id)
    if session is None:
        return None
    session = await finish_if_half_done(store, session)
    return session if session.state.live else None


class Crash(Exception):
    pass


def crash_after(step: str):
    def fault(name: str) -> None:
        if name == step:
            raise Crash(step)

    return fault


async def open_session(store: SessionStore, lines: int = 3, tenant: str = "desk") -> Session:
    sid = new_session_id()
    conv = f"conv-{sid[:8]}"
    session = Session(
        id=sid, tenant_id=tenant, conversation_id=conv, pipeline_id="main",
        stage_key="menu", metadata={"Guest.Name": "Ada", "Answers.Need": "help"},
    )
    session.reference = {"serviceUrl": "http://127.0.0.1"}
    session = await store.begin(session)
    entries = []
    for i in range(lines):
        entries.append(TranscriptEntry(
            session_id=sid, tenant_id=tenant, seq=i,
            direction=Direction.IN if i % 2 == 0 else Direction.OUT,
            sender="guest" if i % 2 == 0 else "bot", text=f"line {i}",
        ))
    session.transcript_count = lines
    for start in range(0, lines, 50):  # Cosmos batches hold at most 100 operations
        session = await store.save(session, entries[start:start + 50])
    return session


async def transfer(store: SessionStore, session: Session, to: str = "hr", name: str = "HR"):
    return await rehome(
        store, session, source_tenant_name="Service Desk", to_tenant_id=to,
        to_tenant_name=name, to_pipeline_id="main", to_stage_key="first",
        card=lambda md: {"type": "AdaptiveCard", "version": "1.5", "body": [
            {"type": "TextBlock", "text": md["Session.TransferredTo.TenantName"]}]},
    )


async def assert_rehomed(store: SessionStore, source: Session, to: str = "hr") -> Session:
    fresh = SessionStore(store.docs)  # another process: no cached locations
    live_now = await settled(fresh, source.conversation_id)
    assert live_now is not None
    live_session = live_now
    live = live_session
    assert live.tenant_id == to and live.state == SessionState.OPEN
    everything = [s for s in await fresh.list(limit=1000)
                  if s.conversation_id == source.conversation_id]
    assert sorted((s.tenant_id, s.state.value) for s in everything) == [
        ("desk", "transferred"), (to, "open")]
    old = await fresh.get("desk", source.id)
    keys = {
        "Session.TransferredFrom.SessionId": source.id,
        "Session.TransferredFrom.TenantId": "desk",
        "Session.TransferredFrom.TenantName": "Service Desk",
        "Session.TransferredTo.SessionId": live.id,
        "Session.TransferredTo.TenantId": to,
        "Session.TransferredTo.TenantName": "HR" if to == "hr" else "Legal",
    }
    for s in (old, live):
        assert {k: s.metadata.get(k) for k in keys} == keys
    assert live.metadata["Answers.Need"] == "help" and live.metadata["Session.Id"] == live.id
    # the transfer card is the first message the target owes the guest
    (card_line,) = await fresh.transcript(to, live.id)
    assert card_line.to == "guest" and card_line.status == Delivery.DUE
    assert card_line.card["body"][0]["text"] == keys["Session.TransferredTo.TenantName"]
    assert [o.seq for o in live.owed] == [card_line.seq]
    pointer = await fresh.pointer(source.conversation_id)
    assert (pointer.tenant_id, pointer.session_id) == (to, live.id)
    transcript = await fresh.transcript("desk", source.id)
    assert [e.text for e in transcript] == [f"line {i}" for i in range(source.transcript_count)]
    return live


@pytest.mark.parametrize("step", STEPS)
async def test_a_crash_after_each_step_is_resumed_by_the_next_activity(docs, step):
    store = SessionStore(docs, fault=crash_after(step))
    source = await open_session(store)
    with pytest.raises(Crash):
        await transfer(store, source)
    await assert_rehomed(store, source)


@pytest.mark.parametrize("step", STEPS)
async def test_a_crash_after_each_step_is_resumed_by_the_startup_sweep(docs, step):
    store = SessionStore(docs, fault=crash_after(step))
    source = await open_session(store)
    with pytest.raises(Crash):
        await transfer(store, source)
    await recover_transfers(SessionStore(docs))
    assert await SessionStore(docs).list(state=SessionState.TRANSFERRING) == []
    await assert_rehomed(store, source)
    # a second sweep finds nothing to do and changes nothing
    assert await recover_transfers(SessionStore(docs)) == []


async def test_resuming_twice_makes_no_second_copy(docs):
    store = SessionStore(docs, fault=crash_after("target"))
    source = await open_session(store)
    with pytest.raises(Crash):
        await transfer(store, source)
    a, b = SessionStore(docs), SessionStore(docs)
    first, second = await asyncio.gather(
        settled(a, source.conversation_id), settled(b, source.conversation_id)
    )
    assert first.id == second.id
    await assert_rehomed(store, source)


async def test_two_racing_transfers_exactly_one_wins(docs):
    store = SessionStore(docs)
    source = await open_session(store)
    results = await asyncio.gather(
        transfer(SessionStore(docs), source, "hr", "HR"),
        transfer(SessionStore(docs), source, "legal", "Legal"),
        return_exceptions=True,
    )
    wins = [r for r in results if isinstance(r, Session)]
    losses = [r for r in results if isinstance(r, TransferRefused)]
    assert len(wins) == 1 and len(losses) == 1, results
    # the loser sees the new truth
    assert losses[0].current.state in (SessionState.TRANSFERRING, SessionState.TRANSFERRED)
    assert losses[0].current.transfer.to_tenant_id == wins[0].tenant_id
    await assert_rehomed(store, source, wins[0].tenant_id)


async def test_a_transfer_costs_the_same_whatever_the_transcript_length(docs):
    store = SessionStore(docs)
    costs = []
    for lines in (10, 1000):
        source = await open_session(store, lines)
        docs.stats.reset()
        await transfer(store, source)
        costs.append(docs.stats.round_trips)
        await assert_rehomed(store, source)
    assert costs[0] == costs[1] <= 6


async def test_a_guest_turn_is_two_round_trips(docs):
    store = SessionStore(docs)
    session = await open_session(store)
    docs.stats.reset()
    now = await store.live(session.conversation_id)
    await store.save(now, [TranscriptEntry(
        session_id=now.id, tenant_id=now.tenant_id, seq=now.transcript_count,
        direction=Direction.IN, sender="guest", text="next")])
    assert docs.stats.round_trips == 2
    # another process, first time it sees this conversation: one more, to read the pointer
    other = SessionStore(docs)
    docs.stats.reset()
    assert (await other.live(session.conversation_id)).id == session.id
    assert docs.stats.round_trips == 2


async def test_a_stale_cached_location_follows_the_transfer(docs):
    a, b = SessionStore(docs), SessionStore(docs)
    source = await open_session(a)
    assert (await b.live(source.conversation_id)).id == source.id  # b caches desk
    moved = await transfer(a, source)
    now = await b.live(source.conversation_id)
    assert now.id == moved.id and now.tenant_id == "hr"


async def test_the_sending_departments_own_metadata_does_not_travel(docs):
    store = SessionStore(docs)
    source = await open_session(store)
    source.metadata.update({"Tenant.NextOpen": "Monday", "Agent.Name": "Alice"})
    source = await store.save(source)
    target = await transfer(store, source)
    assert "Tenant.NextOpen" not in target.metadata and "Agent.Name" not in target.metadata
    assert target.metadata["Answers.Need"] == "help"
