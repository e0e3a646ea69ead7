"""A department's feeds: what changed since a position, read from indexes, never by scanning.

Three feeds (storage/stats.py `FEEDS`), each an indexed field of a kind of document in the
department's part of `tenant_data` (storage/layout.py):

- `opened`: sessions by `created_at`;
- `closed`: sessions by `closed_at` (open ones have none and are not in it);
- `waits`: the records of waits for an agent, by `at` (written by routing as each wait ends).

An item's position is (time, id). Reading since a position walks the index from a bound
down to the position's time, newest first, a page at a time: the cost is the items after
it (and those at its very time), whatever the history. Items with the same time come back
in id order, so a page that ends inside a run of equal times is continued by asking for the
run again with a larger limit.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from storage.documents import DocumentStore
from storage.layout import TENANT_DATA
from storage.stats import Position

# feed -> (document type, the field it is ordered by)
FEED_FIELDS: dict[str, tuple[str, str]] = {
    "opened": ("session", "created_at"),
    "closed": ("session", "closed_at"),
    "waits": ("wait", "at"),
}
# the feeds that are sessions (by a field every session write stamps no later than its
# `updated_at`): a read of the sessions written since a moment holds their items since then
SESSION_FEEDS = frozenset(f for f, (kind, _) in FEED_FIELDS.items() if kind == "session")
PAGE = 200
# pages one walk may read before it gives up (a bound on every loop; 2 million items)
MAX_PAGES = 10_000


async def since(
    docs: DocumentStore,
    feed: str,
    tenant_id: str,
    after: Position | None,
    upto: str,
    *,
    page: int = PAGE,
) -> AsyncIterator[list[tuple[Position, dict[str, Any]]]]:
    """The items of `feed` in (after, (upto, max)], newest first, a page at a time."""
    kind, field = FEED_FIELDS[feed]
    bound = upto
    skip = 0  # items at `bound` already returned (equal times come back in id order)
    for _ in range(MAX_PAGES):
        limit = skip + page
        found = await docs.query(TENANT_DATA, (tenant_id,), {"type": kind},
                                 order_by=field, descending=True, limit=limit,
                                 at_most={field: bound},
                                 at_least={field: after[0]} if after is not None else None)
        fresh = found[skip:]
        out: list[tuple[Position, dict[str, Any]]] = []
        done = len(found) < limit
        for doc in fresh:
            position = (str(doc.body[field]), doc.id)
            if after is not None and position <= after:
                done = True
                break
            out.append((position, doc.body))
        if out:
            yield out
        if done or not fresh:
            return
        last = str(fresh[-1].body[field])
        skip = sum(1 for doc in found if str(doc.body[field]) == last)
        bound = last
    raise RuntimeError(f"feed {feed} of {tenant_id}: more than {MAX_PAGES} pages")


def from_sessions(feed: str, sessions: list[dict[str, Any]], after: Position | None,
                  upto: str) -> list[tuple[Position, dict[str, Any]]]:
    """The items of a session feed in (after, (upto, max)] among sessions already read,
    newest first: what `since` would return of them, with no query."""
    kind, field = FEED_FIELDS[feed]
    out = []
    for body in sessions:
        value = body.get(field)
        if body.get("type") != kind or not isinstance(value, str) or value > upto:
            continue
        position = (value, str(body.get("id")))
        if after is None or position > after:
            out.append((position, body))
    out.sort(key=lambda item: item[0], reverse=True)
    return out
