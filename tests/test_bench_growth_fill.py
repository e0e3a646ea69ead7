"""The store-growth benchmark's fill (bench/growth_fill.py): copies of a chat, written as raw
rows into the store's own tables, must be chats the store serves like the one they copy:
new ids everywhere (partition key, pointer, lines), found through the store's indexes, and
nothing shared copied twice. (The benchmark itself runs for minutes: bench/README.md.)"""

from __future__ import annotations

import sqlite3
import sys
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from storage.agents import AgentRecord, AgentStore
from storage.embedded import EmbeddedStore
from storage.models import Direction, Session, SessionState, TranscriptEntry
from storage.sessions import SessionStore, new_session_id

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

from growth_fill import Filler, Templates, snapshot

AAD_TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
AGENT = "00000000-0000-0000-0000-000000000104"


async def _template(path: Path) -> tuple[Templates, Session]:
    """A store with an agent's record (shared) and one resolved HR chat of three lines."""
    docs = EmbeddedStore(path)
    await docs.open()
    try:
        await AgentStore(docs).update(AGENT, lambda r: r,
                                      default=lambda: AgentRecord(agent_id=AGENT, name="Helen"))
        shared = snapshot(path)
        sessions = SessionStore(docs)
        sid = new_session_id()
        session = Session(
            id=sid, tenant_id="hr", conversation_id=f"a:1{uuid.uuid4().hex}",
            pipeline_id="hr-intake", stage_key="topic",
            metadata={"Guest.AadObjectId": str(uuid.uuid4()), "Guest.AadTenantId": AAD_TENANT,
                      "Session.Id": sid},
        )

        def line(seq: int, text: str) -> TranscriptEntry:
            return TranscriptEntry(session_id=sid, tenant_id="hr", seq=seq,
                                   direction=Direction.IN, sender="guest", text=text,
                                   ttl=sessions.retention_seconds)

        session.transcript_count = 1
        session = await sessions.begin(session, [line(0, "hi")])
        session.transcript_count = 3
        session.state = SessionState.RESOLVED
        before = shared
        session = await sessions.save(session, [line(1, "E12345"), line(2, "Leave")])
        # a de-duplication record lives a minute: a copy of a chat from days ago has none
        await docs.create("conversations", session.conversation_id, "seen:act-1",
                          {"type": "seen", "ttl": 60})
        after = snapshot(path)
    finally:
        await docs.close()
    return Templates.capture(shared, [("hr_resolved", before, after)], after, AAD_TENANT), session


async def test_copies_are_chats_of_their_own_that_the_store_finds_through_its_indexes(tmp_path):
    templates, original = await _template(tmp_path / "template.sqlite3")
    rows = len(templates.chats["hr_resolved"].rows)
    assert rows == 6  # the session, three lines, the conversation pointer, a seen record
    rows -= 1  # copies leave the expired seen record out

    filler = Filler(templates, {"hr_resolved": 1}, retention_seconds=90 * 86_400)
    path = tmp_path / "filled.sqlite3"
    assert await filler.create_embedded(path) == 1  # the agent's record, once
    assert filler.fill_embedded(path, 3 * rows) == 3 * rows
    assert filler.documents == 3 * rows + 1

    docs = EmbeddedStore(path)
    await docs.open()
    try:
        sessions = SessionStore(docs)
        copies = await sessions.list("hr", SessionState.RESOLVED, limit=10)
        ids = {c.id for c in copies}
        assert len(copies) == 3 and len(ids) == 3 and original.id not in ids
        guests = {c.metadata["Guest.AadObjectId"] for c in copies}
        assert len(guests) == 3 and original.metadata["Guest.AadObjectId"] not in guests
        for copy in copies:
            assert copy.metadata["Session.Id"] == copy.id
            assert copy.metadata["Guest.AadTenantId"] == AAD_TENANT  # shared: kept
            pointer = await sessions.pointer(copy.conversation_id)
            assert pointer is not None and pointer.session_id == copy.id
            lines = await sessions.transcript(copy.tenant_id, copy.id)
            assert [(e.seq, e.text, e.session_id) for e in lines] == [
                (0, "hi", copy.id), (1, "E12345", copy.id), (2, "Leave", copy.id)]
            tail = await sessions.transcript_tail(copy.tenant_id, copy.id, 2)
            assert [e.text for e in tail] == ["E12345", "Leave"]
            # a chat of its own day: its times moved back by its age, as its expiry is
            age = datetime.fromisoformat(original.created_at) - datetime.fromisoformat(
                copy.created_at)
            assert timedelta(0) < age < timedelta(days=90)
            assert datetime.fromisoformat(original.updated_at) - datetime.fromisoformat(
                copy.updated_at) == age
        assert len({c.created_at for c in copies}) == 3
        assert await AgentStore(docs).get(AGENT) is not None
    finally:
        await docs.close()
    db = sqlite3.connect(path)
    try:  # the seen records are not hidden as expired: not there at all; nothing has expired
        assert db.execute('SELECT COUNT(*) FROM "conversations"').fetchone()[0] == 3
        expired = 'SELECT COUNT(*) FROM "tenant_data" WHERE expires <= unixepoch()'
        assert db.execute(expired).fetchone()[0] == 0
    finally:
        db.close()


async def test_a_row_without_an_id_of_its_own_is_refused(tmp_path):
    path = tmp_path / "template.sqlite3"
    docs = EmbeddedStore(path)
    await docs.open()
    try:
        before = snapshot(path)
        await docs.upsert("config", "settings", "settings", {"type": "config", "x": 1})
        after = snapshot(path)
    finally:
        await docs.close()
    with pytest.raises(ValueError, match="copies would collide"):
        Templates.capture({}, [("odd", before, after)], after, AAD_TENANT)
