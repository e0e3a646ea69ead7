"""`switchboard-admin sessions export`: closed chats with their transcripts, as JSON lines,
to archive them before they expire (issue 10)."""

from __future__ import annotations

import json
import uuid

import pytest

import admin.export as export
from storage.embedded import EmbeddedStore
from storage.models import Direction, Session, SessionState, TranscriptEntry
from storage.sessions import SessionStore
from tests.test_cli import store, store_cli  # noqa: F401 - the CLI's prepared store


def test_export_writes_closed_chats_with_their_transcripts(store, tmp_path):  # noqa: F811
    db, ids = store
    out = tmp_path / "archive.jsonl"
    result = store_cli(db, "sessions", "export", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "exported 1 closed chat" in result.stderr
    (line,) = out.read_text().splitlines()
    record = json.loads(line)
    # Ada's first chat closed when it moved to HR; her HR chat and Bo's are still open
    assert record["session"]["id"] == ids["Ada-first"]
    assert record["session"]["state"] == "transferred"
    said = [entry.get("text") for entry in record["transcript"]]
    assert "badge broken" in said
    assert [e["seq"] for e in record["transcript"]] == sorted(e["seq"] for e in
                                                             record["transcript"])
    # to standard output, by tenant and date
    assert store_cli(db, "sessions", "export", "--tenant", "hr").stdout == ""
    assert len(store_cli(db, "sessions", "export", "--tenant", "front").stdout.splitlines()) == 1
    assert store_cli(db, "sessions", "export", "--since", "2999-01-01").stdout == ""
    bad = store_cli(db, "sessions", "export", "--since", "last tuesday")
    assert bad.returncode == 2 and "--since 'last tuesday' is not a date" in bad.stderr


@pytest.mark.parametrize("page", [1, 3, 50])
async def test_export_pages_through_every_closed_chat_once(tmp_path, monkeypatch, page):
    monkeypatch.setattr(export, "PAGE", page)
    docs = EmbeddedStore(tmp_path / "db.sqlite3")
    await docs.open()
    try:
        sessions = SessionStore(docs)
        wanted = set()
        for n in range(12):
            session = Session(id=uuid.uuid4().hex, tenant_id="hr", conversation_id=f"c{n}",
                              pipeline_id="main", stage_key="a")
            session = await sessions.create(session, [TranscriptEntry(
                session_id=session.id, tenant_id="hr", seq=0, direction=Direction.IN,
                sender="guest", text=f"hello {n}")])
            if n % 3:
                session.state = SessionState.RESOLVED
                # several close at the same moment: paging must neither skip nor repeat them
                session = await sessions.save(session)
                wanted.add(session.id)
        got = [s.id async for s in export.closed_sessions(docs, "hr", None)]
        assert sorted(got) == sorted(wanted) and len(got) == len(set(got))
    finally:
        await docs.close()
