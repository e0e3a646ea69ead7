"""Folding the feeds into the rollups: the console's figures, kept up to date in the
background, at a cost that grows with what happened since the last fold, not with history.

Each round, for each department: read its cursor (how far each feed was folded), walk each
feed from there up to `now - lag` (storage/feeds.py), add every item's facts to the rollup
of its day (storage/stats.py), write those rollups (If-Match), then the cursor. The lag
leaves time for a write whose timestamp was taken before it landed (a turn, a retried
Cosmos write, a transfer finished by recovery): an item must be in the store by the time
the fold passes its time, and `lag` is that margin.

Exactly once: a rollup records, per feed, the last item folded into it (`through`), and an
item is added only when it comes after that. So a fold that dies between writing a rollup
and its cursor, or two instances folding at once (a rollup written by the other fails its
If-Match and this round stops), never count an item twice.

A chat that closes also gets a search digest (its guest, department, state, dates and the
words the guest typed), one small document the console's search reads instead of
transcripts; it expires with the chat.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from storage.documents import (
    AlreadyExists,
    DocumentStore,
    PreconditionFailed,
    WriteOp,
)
from storage.feeds import since
from storage.layout import CONSOLE, TENANT_DATA
from storage.stats import FEEDS, Position, Rollup, facts, rollup_id

log = logging.getLogger("switchboard.console.fold")

CURSOR_ID = "cursor"
LEASE_SCOPE, LEASE_ID = "folder", "lease"
# words of a chat kept for search, at most
DIGEST_WORDS = 400
_WORD = re.compile(r"[^\W_]{2,}", re.UNICODE)


def words(texts: Iterable[str]) -> list[str]:
    """The distinct words of texts, case-folded, in first-seen order (at most DIGEST_WORDS)."""
    seen: dict[str, None] = {}
    for text in texts:
        for word in _WORD.findall(text.casefold()):
            seen.setdefault(word)
            if len(seen) >= DIGEST_WORDS:
                return list(seen)
    return list(seen)


class Cursor:
    """How far each feed of a department was folded."""

    def __init__(self, positions: dict[str, Position], etag: str | None) -> None:
        self.positions = positions
        self.etag = etag

    def body(self) -> dict[str, Any]:
        return {"type": "cursor", "positions": {k: list(v) for k, v in self.positions.items()}}


async def read_cursor(docs: DocumentStore, tenant_id: str) -> Cursor:
    doc = await docs.read(CONSOLE, tenant_id, CURSOR_ID)
    if doc is None:
        return Cursor({}, None)
    positions = {k: (str(v[0]), str(v[1])) for k, v in (doc.body.get("positions") or {}).items()}
    return Cursor(positions, doc.etag)


def iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).isoformat(timespec="milliseconds")


@dataclass
class Round:
    """What one department's fold changed (for the log and the tests)."""

    items: int = 0
    rollups: int = 0
    digests: int = 0
    conflicts: int = 0


@dataclass
class Folder:
    docs: DocumentStore
    tenants: Callable[[], list[str]]
    rating_keys: tuple[str, ...] = ()
    lag: float = 60.0
    retention_seconds: int = 90 * 86_400
    clock: Callable[[], float] = time.time
    owner: str = ""
    lease_seconds: float = 60.0
    # a department never folded (the console just turned on over a store with history)
    # starts this far back: its figures begin the day before, and the first round costs
    # what two days brought, not what the whole retention period holds
    backfill_seconds: float = 2 * 86_400
    _rounds: dict[str, Round] = field(default_factory=dict)

    async def take_lease(self) -> bool:
        """One instance folds at a time (a lease document, taken If-Match)."""
        now = self.clock()
        body = {"type": "lease", "owner": self.owner, "until": now + self.lease_seconds}
        doc = await self.docs.read(CONSOLE, LEASE_SCOPE, LEASE_ID)
        try:
            if doc is None:
                await self.docs.create(CONSOLE, LEASE_SCOPE, LEASE_ID, body)
                return True
            if doc.body.get("owner") != self.owner and float(doc.body.get("until", 0)) > now:
                return False
            await self.docs.replace(CONSOLE, LEASE_SCOPE, LEASE_ID, body, doc.etag)
            return True
        except (AlreadyExists, PreconditionFailed):
            return False

    async def fold(self) -> dict[str, Round]:
        """One round over every department; what it did, by department."""
        out = {}
        for tenant_id in self.tenants():
            out[tenant_id] = await self.fold_tenant(tenant_id)
        return out

    async def fold_tenant(self, tenant_id: str) -> Round:
        report = Round()
        cursor = await read_cursor(self.docs, tenant_id)
        upto = iso(self.clock() - self.lag)
        rollups: dict[str, Rollup] = {}
        moved: dict[str, Position] = {}
        start: Position = (iso(self.clock() - self.lag - self.backfill_seconds), "")
        for feed in FEEDS:
            after = cursor.positions.get(feed) or start
            async for page in since(self.docs, feed, tenant_id, after, upto):
                for position, body in page:
                    report.items += 1
                    moved[feed] = max(moved.get(feed, position), position)
                    for fact in facts(feed, body, self.rating_keys):
                        rollup = rollups.get(fact.day) or await self._rollup(tenant_id, fact.day)
                        rollups[fact.day] = rollup
                        done = rollup.through.get(feed)
                        if done is None or position > done:
                            rollup.add(fact.slot, fact.counts)
                            rollup.through[feed + "+"] = max(
                                rollup.through.get(feed + "+", position), position)
                if feed == "closed":
                    report.digests += await self._digests(tenant_id, [b for _, b in page])
        # a feed with nothing since `start` is folded up to `start` all the same: no reader of
        # the cursor (the live view's tail) goes back before it
        unset = {feed: start for feed in FEEDS if feed not in cursor.positions}
        if not moved and not unset:
            return report
        for rollup in rollups.values():
            for feed in FEEDS:
                newest = rollup.through.pop(feed + "+", None)
                if newest is not None:
                    rollup.through[feed] = newest
            try:
                await self._write(tenant_id, rollup)
            except (PreconditionFailed, AlreadyExists):
                report.conflicts += 1
                log.info("another fold wrote a rollup first; this round stops",
                         extra={"tenant": tenant_id, "day": rollup.day})
                return report
            report.rollups += 1
        positions = {**unset, **cursor.positions, **moved}
        try:
            if cursor.etag is None:
                await self.docs.create(CONSOLE, tenant_id, CURSOR_ID,
                                       Cursor(positions, None).body())
            else:
                await self.docs.replace(CONSOLE, tenant_id, CURSOR_ID,
                                        Cursor(positions, None).body(), cursor.etag)
        except (PreconditionFailed, AlreadyExists):
            report.conflicts += 1
        return report

    async def _rollup(self, tenant_id: str, day: str) -> Rollup:
        doc = await self.docs.read(CONSOLE, tenant_id, rollup_id(day))
        if doc is None:
            return Rollup(tenant_id=tenant_id, day=day)
        return Rollup.model_validate(doc.body).model_copy(update={"etag": doc.etag})

    async def _write(self, tenant_id: str, rollup: Rollup) -> None:
        if rollup.etag is None:
            await self.docs.create(CONSOLE, tenant_id, rollup_id(rollup.day), rollup.body())
        else:
            await self.docs.replace(CONSOLE, tenant_id, rollup_id(rollup.day), rollup.body(),
                                    rollup.etag)

    async def _digests(self, tenant_id: str, sessions: list[dict[str, Any]]) -> int:
        """A search digest for each closed session (upserts: a second fold rewrites it)."""
        ops = []
        for body in sessions:
            ops.append(WriteOp("upsert", f"digest:{body['id']}",
                               await digest(self.docs, body, self.retention_seconds)))
        for start in range(0, len(ops), 100):
            await self.docs.batch(CONSOLE, tenant_id, ops[start:start + 100])
        return len(ops)


async def digest(docs: DocumentStore, session: dict[str, Any], ttl: int) -> dict[str, Any]:
    """What search needs of a closed chat: one query of its own transcript, once."""
    lines = await docs.query(TENANT_DATA, (session["tenantId"], session["id"]),
                             {"type": "transcript"}, order_by="seq")
    typed = [text for d in lines
             if d.body.get("sender") == "guest" and d.body.get("direction") == "in"
             for text in typed_texts(d.body)]
    metadata = session.get("metadata") or {}
    name = str(metadata.get("Guest.Name") or "")
    closed = session.get("closed_at") or ""
    left = max(1, ttl - int(_age(closed)))
    return {
        "type": "digest",
        "session_id": session["id"],
        "tenant_id": session["tenantId"],
        "created_at": session.get("created_at"),
        "closed_at": closed,
        "state": session.get("state"),
        "guest": name,
        "guest_key": name.casefold(),
        "agent": metadata.get("Agent.Name"),
        "words": words(typed),
        "ttl": left,
    }


# what a card's button adds to the answers it submits (not typed by the guest)
CARD_KEYS = frozenset({"session", "stage", "verb", "action", "choice", "tenant", "msteams"})


def typed_texts(line: dict[str, Any]) -> list[str]:
    """What a guest typed on a line: its text, and the text inputs of a card they submitted."""
    out = [str(line.get("text") or "")]
    value = line.get("value")
    if isinstance(value, dict):
        out += [v for k, v in value.items()
                if isinstance(v, str) and k not in CARD_KEYS and not k.startswith("_")]
    return out


def _age(moment: str) -> float:
    try:
        then = datetime.fromisoformat(moment)
    except ValueError:
        return 0.0
    if then.tzinfo is None:
        then = then.replace(tzinfo=UTC)
    return max(0.0, (datetime.now(UTC) - then) / timedelta(seconds=1))
