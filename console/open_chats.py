"""A department's open chats (in a pipeline, waiting, connected), kept between refreshes of
the live view, so that a refresh reads the chats that changed, not every open chat again.

A full read (three indexed queries, one per phase, each at most LIST_LIMIT chats) fills the
set. After it, a refresh reads the department's sessions by `updated_at`, newest first, down
to when the last read began less SLACK_SECONDS (every session write stamps `updated_at`:
storage/sessions.py `create` and `save`): each one read replaces what was kept of it, or
removes it when it is no longer open. A write whose stamp was taken before another's but
landed after it is read again by the next refresh within those seconds, as the figures'
tail does (console/figures.py). A full read is made again every RESYNC_SECONDS (what no
write announces: a document purged by its TTL, a write stamped by a clock more than
SLACK_SECONDS behind this instance's), when the changes since
the last refresh are too many to read (FULL_AFTER), and always for a department whose
open chats in one phase pass LIST_LIMIT (the list is then cut, and no change can be told
from the chats beyond the cut).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from storage.documents import DocumentStore
from storage.layout import TENANT_DATA
from storage.models import Phase, SessionState

# open chats listed per department and phase, at most (the count says "1000+" past it)
LIST_LIMIT = 1000
# a refresh reads again the writes of this many seconds before the newest it had seen
SLACK_SECONDS = 5.0
RESYNC_SECONDS = 60.0
# more changed sessions than this since the last refresh: a full read is cheaper
FULL_AFTER = 500
PHASES = (Phase.PIPELINE, Phase.WAITING, Phase.CONNECTED)
_OPEN = SessionState.OPEN.value


@dataclass(frozen=True)
class Changed:
    """Every session of a department written since `since` (its `updated_at`), as stored."""

    since: str
    sessions: list[dict[str, Any]]


@dataclass
class OpenChats:
    """One department's open chats, by id: each as stored (its body)."""

    tenant_id: str
    chats: dict[str, dict[str, Any]] = field(default_factory=dict)
    read_at: datetime | None = None  # when the last read began (this instance's clock)
    synced_at: float | None = None  # monotonic time of the last full read
    cut: frozenset[Phase] = frozenset()  # the phases the last full read cut at LIST_LIMIT

    def lists(self, fresh_after: str) -> dict[str, list[dict[str, Any]]]:
        """The chats by phase (its value), newest first, at most LIST_LIMIT each; in a
        pipeline only those written since `fresh_after`."""
        out: dict[str, list[dict[str, Any]]] = {p: [] for p in _PHASE_VALUES}
        for body in self.chats.values():
            phase = body.get("phase")
            if phase != _PIPELINE or str(body.get("updated_at", "")) >= fresh_after:
                out[phase].append(body)
        for chats in out.values():
            chats.sort(key=_stamp, reverse=True)
            del chats[LIST_LIMIT:]
        return out

    async def refresh(self, docs: DocumentStore, now: datetime, fresh_after: str,
                      monotonic: float) -> Changed | None:
        """Bring the set up to date: the changes since the last refresh (returned: the
        figures' tail takes the sessions opened and closed since then from them), or a full
        read (None)."""
        if (self.read_at is None or self.synced_at is None or self.cut
                or monotonic - self.synced_at >= RESYNC_SECONDS):
            await self._full(docs, now, fresh_after, monotonic)
            return None
        since = (self.read_at - timedelta(seconds=SLACK_SECONDS)).isoformat(
            timespec="milliseconds")
        changed, cut = await newest_first(docs, self.tenant_id, {"type": "session"}, since,
                                          at_most=FULL_AFTER)
        if cut:
            await self._full(docs, now, fresh_after, monotonic)
            return None
        self.read_at = now
        for body in changed:
            sid = str(body.get("id"))
            if body.get("state") == _OPEN and body.get("phase") in _PHASE_VALUES:
                self.chats[sid] = body  # what the store holds now: the latest
            else:
                self.chats.pop(sid, None)
        # guests who went idle in a pipeline are no longer shown: forget them
        for sid in [s for s, b in self.chats.items() if b.get("phase") == _PIPELINE
                    and str(b.get("updated_at", "")) < fresh_after]:
            del self.chats[sid]
        return Changed(since, changed)

    async def _full(self, docs: DocumentStore, now: datetime, fresh_after: str,
                    monotonic: float) -> None:
        chats: dict[str, dict[str, Any]] = {}
        cut: set[Phase] = set()
        for phase in PHASES:
            found, capped = await newest_first(
                docs, self.tenant_id,
                {"type": "session", "state": _OPEN, "phase": phase.value},
                fresh_after if phase is Phase.PIPELINE else None, at_most=LIST_LIMIT)
            if capped:
                cut.add(phase)
            for body in found:
                chats[str(body.get("id"))] = body
        self.chats, self.cut = chats, frozenset(cut)
        self.read_at, self.synced_at = now, monotonic


_PHASE_VALUES = tuple(p.value for p in PHASES)
_PIPELINE = Phase.PIPELINE.value


def _stamp(body: dict[str, Any]) -> str:
    return str(body.get("updated_at", ""))


async def newest_first(docs: DocumentStore, tenant_id: str, equals: dict[str, Any],
                       since: str | None, *, at_most: int
                       ) -> tuple[list[dict[str, Any]], bool]:
    """A department's sessions matching `equals`, newest `updated_at` first, as stored;
    with `since`, only those written since (one query that reads nothing older). True when
    there were more than `at_most`."""
    found = await docs.query(
        TENANT_DATA, (tenant_id,), equals, order_by="updated_at", descending=True,
        limit=at_most + 1, at_least={"updated_at": since} if since else None)
    return [d.body for d in found[:at_most]], len(found) > at_most
