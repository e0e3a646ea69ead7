"""Rehoming: move a conversation's live session to another tenant's partition.

Cosmos cannot move an item between partitions, nor write two partitions in one
transaction, so the move is four idempotent steps. Each one can be repeated, and the
first one records the whole intent on the sending session, so whoever finds the session
in `transferring` (the next activity, or the sweep) finishes the same move:

1. `intent`  - the sending session, If-Match its ETag: state `transferring`, the target's
               new session id, the bound transfer card, and the six Session.TransferredFrom/To
               keys, with the sending turn's last lines. Two racing transfers: one wins this
               write, the other gets a conflict.
2. `target`  - create the target session (same id on a retry, so never two), with the
               transfer card as the first message it owes the guest (and, on the live path,
               the lines of its first stages, run before it is written).
3. `pointer` - move the conversation pointer to the target, if it still points at the source.
4. `close`   - the sending session: state `transferred`.

The transcript is not copied: it stays in the sending tenant, reachable through
Session.TransferredFrom.*, so the cost does not grow with its length.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import telemetry
from storage.models import (
    Delivery,
    Direction,
    Hop,
    Owed,
    Phase,
    Session,
    SessionState,
    TranscriptEntry,
    TransferIntent,
    utcnow,
)
from storage.sessions import SessionConflict, SessionStore, new_session_id

STEPS = ("intent", "target", "pointer", "close")
# metadata that describes the sending department, not the guest: not carried over
LOCAL_PREFIXES = ("Tenant.", "Agent.")


class TransferRefused(Exception):
    """The session is no longer where the transfer expected it (another transfer won)."""

    def __init__(self, message: str, current: Session | None) -> None:
        super().__init__(message)
        self.current = current


def transfer_keys(hop: Hop) -> dict[str, Any]:
    return {
        "Session.TransferredFrom.SessionId": hop.from_session_id,
        "Session.TransferredFrom.TenantId": hop.from_tenant_id,
        "Session.TransferredFrom.TenantName": hop.from_tenant_name,
        "Session.TransferredTo.SessionId": hop.to_session_id,
        "Session.TransferredTo.TenantId": hop.to_tenant_id,
        "Session.TransferredTo.TenantName": hop.to_tenant_name,
    }


@telemetry.traced("rehome.intent")
async def mark_intent(
    store: SessionStore,
    source: Session,
    *,
    source_tenant_name: str,
    to_tenant_id: str,
    to_tenant_name: str,
    to_pipeline_id: str,
    to_stage_key: str,
    card: Callable[[dict[str, Any]], dict[str, Any] | None] | None = None,
    by: str = "pipeline",
    by_name: str | None = None,
    entries: list[TranscriptEntry] = (),
    records: dict[str, dict[str, Any]] | None = None,
) -> Session:
    """Step 1: the sending session, in `transferring`, with the whole intent.

    `entries`: the sending turn's lines (and messages owed), written in the same batch.
    Raises TransferRefused when the session changed meanwhile.
    """
    if source.state != SessionState.OPEN:
        raise TransferRefused(f"session {source.id} is {source.state}", source)
    hop = Hop(
        from_session_id=source.id,
        from_tenant_id=source.tenant_id,
        from_tenant_name=source_tenant_name,
        to_session_id=new_session_id(),
        to_tenant_id=to_tenant_id,
        to_tenant_name=to_tenant_name,
        by=by,
        by_name=by_name,
    )
    intent = TransferIntent(
        to_session_id=hop.to_session_id,
        to_tenant_id=to_tenant_id,
        to_tenant_name=to_tenant_name,
        to_pipeline_id=to_pipeline_id,
        to_stage_key=to_stage_key,
    )
    metadata = {**source.metadata, **transfer_keys(hop)}
    if card is not None:
        intent.card = card(metadata)
    marked = source.model_copy(
        update={
            "phase": Phase.PIPELINE,
            "routing": None,
            "agent": None,
            "timers": {},
            "state": SessionState.TRANSFERRING,
            "awaiting_input": False,
            "transfer": intent,
            "metadata": metadata,
            "hop_log": [*source.hop_log, hop],
        }
    )
    try:
        marked = await store.save(marked, list(entries), records)
    except SessionConflict:
        current = await store.get(source.tenant_id, source.id)
        raise TransferRefused(
            f"session {source.id} changed before its transfer could start", current
        ) from None
    store.step("intent")
    return marked


def target_of(source: Session) -> Session:
    """The receiving session a transferring one describes (not started, nothing owed yet)."""
    intent = source.transfer
    if source.state != SessionState.TRANSFERRING or intent is None:
        raise ValueError(f"session {source.id} is not being transferred")
    metadata = {
        # what belongs to the sending department (its hours, its agent) stays there
        **{k: v for k, v in source.metadata.items() if not k.startswith(LOCAL_PREFIXES)},
        "Session.Id": intent.to_session_id,
        "Session.TenantId": intent.to_tenant_id,
        "Session.TenantName": intent.to_tenant_name,
        "Session.Hops": source.hops + 1,
    }
    return Session(
        id=intent.to_session_id,
        tenant_id=intent.to_tenant_id,
        conversation_id=source.conversation_id,
        pipeline_id=intent.to_pipeline_id,
        stage_key=intent.to_stage_key,
        started=False,
        metadata=metadata,
        hops=source.hops + 1,
        hop_log=list(source.hop_log),
        reference=dict(source.reference),
        # a redelivery of the activity that caused the move must not replay in the target
        seen=list(source.seen),
    )


def transfer_card_line(target: Session, card: dict[str, Any], owner: str, until: float,
                       ttl: int | None = None) -> TranscriptEntry:
    """The transfer card, the first message the receiving session owes the guest."""
    line = TranscriptEntry(
        session_id=target.id, tenant_id=target.tenant_id, seq=target.transcript_count,
        direction=Direction.OUT, sender="bot", card=card, to="guest", status=Delivery.DUE,
        ttl=ttl,
    )
    target.transcript_count += 1
    target.owed.append(Owed(seq=line.seq, owner=owner, until=until))
    return line


async def finish_rehome(
    store: SessionStore,
    source: Session,
    *,
    target: Session | None = None,
    entries: list[TranscriptEntry] = (),
    owner: str = "recovery",
    records: dict[str, dict[str, Any]] | None = None,
) -> Session:
    """Steps 2-4 for a session in `transferring`; safe to run any number of times.

    `target` and `entries`: the receiving session as the live path has already run it (its
    first stages, the transfer card first); without them (recovery) the receiving session
    is created not started, owing only the transfer card, leased to `owner`.
    """
    intent = source.transfer
    if target is None:
        target = target_of(source)
        entries = []
        if intent is not None and intent.card is not None:
            until = store.clock() + store.lease_seconds
            entries = [transfer_card_line(target, intent.card, owner, until,
                                          store.retention_seconds)]
    assert intent is not None and target.id == intent.to_session_id
    with telemetry.span("rehome.target"):
        target = await store.create(target, list(entries), records)
    store.step("target")

    with telemetry.span("rehome.pointer"):
        await store.repoint(source.conversation_id, source.id, target)
    store.step("pointer")

    await close_source(store, source)
    store.step("close")
    store.remember(target)
    return target


@telemetry.traced("rehome.close")
async def close_source(store: SessionStore, source: Session) -> None:
    closed = source.model_copy(
        update={"state": SessionState.TRANSFERRED, "closed_at": utcnow()}
    )
    for _ in range(5):
        try:
            await store.save(closed)
            return
        except SessionConflict:
            current = await store.get(source.tenant_id, source.id)
            if current is None or current.state != SessionState.TRANSFERRING:
                return  # another process finished it
            closed = current.model_copy(
                update={"state": SessionState.TRANSFERRED, "closed_at": utcnow()}
            )


async def finish_if_half_done(store: SessionStore, session: Session,
                              owner: str = "recovery") -> Session:
    """The session a conversation should be in, finishing a rehome a crash left half-done:
    `session` in `transferring`, or a not-yet-started target whose source still is."""
    if session.state == SessionState.TRANSFERRING:
        return await finish_rehome(store, session, owner=owner)
    if not session.started and session.hop_log:
        hop = session.hop_log[-1]
        source = await store.get(hop.from_tenant_id, hop.from_session_id)
        if source is not None and source.state == SessionState.TRANSFERRING:
            return await finish_rehome(store, source, owner=owner)
    return session


async def half_done(store: SessionStore, limit: int = 100) -> list[Session]:
    """Sessions a crash left `transferring` (the sweep finishes them)."""
    return await store.list(state=SessionState.TRANSFERRING, limit=limit)
