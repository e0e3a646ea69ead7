"""`sessions export`: closed chats with their transcripts, as JSON lines, to archive them
before they expire (closed chats are kept SWITCHBOARD_RETENTION_DAYS, then deleted).

One line per session, newest first: `{"session": {...}, "transcript": [...]}`. Chats still
open are left out (they are exported once they close). Reads the sessions a page at a time,
newest first, through the store's index on `updated_at`, so memory stays flat however many
there are.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any, TextIO

import typer

from admin.common import USAGE, fail, open_store, run
from admin.sessions import ConfigOption, DbOption, _check_tenant, _tenant_names

PAGE = 200


async def closed_sessions(docs: Any, tenant: str | None, since: str | None):
    """Closed sessions, newest first (by last change), changed at or after `since`."""
    from storage.layout import TENANT_DATA
    from storage.models import Session

    before: str | None = None
    # ids already read at the moment `before` (ties come back on the next page): a page
    # asks for as many more, so that it always brings something new
    at_before: set[str] = set()
    while True:
        limit = PAGE + len(at_before)
        page = await docs.query(
            TENANT_DATA, None if tenant is None else (tenant,), {"type": "session"},
            order_by="updated_at", descending=True, limit=limit,
            at_most={"updated_at": before} if before else None,
        )
        for doc in page:
            if doc.id in at_before:
                continue
            session = Session.model_validate(doc.body)
            if since is not None and session.updated_at < since:
                return
            if not session.state.live:
                yield session
        if len(page) < limit:
            return
        last = str(page[-1].body["updated_at"])
        ties = {d.id for d in page if d.body.get("updated_at") == last}
        at_before = (at_before | ties) if last == before else ties
        before = last


def _since(value: str | None) -> str | None:
    if value is None:
        return None
    from datetime import datetime

    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise fail(f"--since {value!r} is not a date or time: use 2026-11-01 or "
                   f"2026-11-01T09:00+00:00", USAGE) from None
    if when.tzinfo is None:
        from datetime import UTC

        when = when.replace(tzinfo=UTC)
    return when.isoformat(timespec="milliseconds")


def export(
    since: Annotated[str | None, typer.Option(
        help="Only chats that changed (closed) at or after this date or time (ISO 8601, UTC "
             "unless it says otherwise).")] = None,
    tenant: Annotated[str | None, typer.Option(help="Only this tenant (its id).")] = None,
    output: Annotated[str | None, typer.Option(
        "--out", help="Write to this file instead of standard output.")] = None,
    config: ConfigOption = None,
    db: DbOption = None,
) -> None:
    """Write closed chats with their transcripts as JSON lines, newest first, to archive them
    before they expire."""
    start = _since(since)
    names = _tenant_names(config)

    async def go(stream: TextIO) -> int:
        from storage.sessions import SessionStore

        count = 0
        async with open_store(db) as docs:
            await _check_tenant(docs, tenant, names)
            store = SessionStore(docs)
            async for session in closed_sessions(docs, tenant, start):
                lines = await store.transcript(session.tenant_id, session.id)
                record = {"session": session.body(),
                          "transcript": [line.body() for line in lines]}
                stream.write(json.dumps(record, ensure_ascii=False, separators=(",", ":")))
                stream.write("\n")
                count += 1
        return count

    if output is None:
        count = run(go(sys.stdout))
    else:
        try:
            with open(output, "w", encoding="utf-8") as stream:
                count = run(go(stream))
        except OSError as exc:
            raise fail(f"cannot write {output}: {exc.strerror or exc}", USAGE) from None
    print(f"exported {count} closed chat{'s' if count != 1 else ''}", file=sys.stderr)
