"""Sessions, their transcript lines and the conversation pointer, on any DocumentStore.

Layout (storage/layout.py): a session and its transcript lines share the partition key
(tenantId, sessionId) in `tenant_data`, so one batch writes a session, its new lines and the
messages it owes (lines addressed to someone: storage/models.py) in one round trip. The
conversation's pointer to its live session lives in `conversations`.

A guest turn costs two round trips: the session is read from the location this process last
saw for the conversation (the pointer is read only on a miss), and written back with its
ETag together with the turn's lines. A stale location is safe: a session that moved away is
closed, so its state says where it went, and its ETag changed, so a write against it fails.

Reading never repairs anything: a session left `transferring` by a crash is returned as it
is, and finishing it is an explicit step (storage/rehome.py, pipelines/recovery.py).
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from storage.documents import (
    AlreadyExists,
    DocumentStore,
    NotFound,
    PreconditionFailed,
    WriteOp,
)
from storage.layout import CONVERSATIONS, TENANT_DATA
from storage.models import (
    DEFAULT_RETENTION_DAYS,
    ConversationPointer,
    Session,
    SessionState,
    TranscriptEntry,
    entry_doc_id,
    utcnow,
)

# Cosmos's limit for one transactional batch
MAX_BATCH = 100


class SessionConflict(Exception):
    """Someone else changed the session first; reload and decide again."""


class StartInProgress(SessionConflict):
    """The conversation points at a session another turn is writing right now."""


def new_session_id(conversation_id: str | None = None, activity_id: str | None = None) -> str:
    """A fresh id; the same id for the same activity, so a redelivered start finds its session."""
    if conversation_id and activity_id:
        digest = hashlib.sha256(f"{conversation_id}\x1f{activity_id}".encode()).hexdigest()
        return digest[:32]
    return uuid.uuid4().hex


@dataclass(slots=True)
class _Seen:
    tenant_id: str
    session_id: str
    # the pointer's ETag when this process last read or wrote it (a repoint then needs no read)
    pointer_etag: str | None = None


class SessionStore:
    def __init__(
        self,
        docs: DocumentStore,
        *,
        location_cache_size: int = 2_000,
        fault: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.time,
        lease_seconds: float = 30.0,
        retention_days: float = DEFAULT_RETENTION_DAYS,
        owner: str = "",
        dead: Callable[[str], bool] = lambda owner: False,
    ) -> None:
        self.docs = docs
        self.clock = clock
        # this process, and how to tell a process known to be dead (pipelines/delivery.py)
        self.owner = owner
        self.dead = dead
        self.lease_seconds = lease_seconds
        self.retention_seconds = max(1, int(retention_days * 86_400))
        self._where: OrderedDict[str, _Seen] = OrderedDict()
        self._cache_size = location_cache_size
        # test hook: called after each rehome step; raising there simulates a crash
        self.fault = fault

    # -- reading ---------------------------------------------------------------------

    async def pointer(self, conversation_id: str) -> ConversationPointer | None:
        doc = await self.docs.read(CONVERSATIONS, conversation_id, conversation_id)
        if doc is None:
            return None
        pointer = ConversationPointer.model_validate(doc.body).model_copy(
            update={"etag": doc.etag}
        )
        seen = self._where.get(conversation_id)
        if seen is not None and seen.session_id == pointer.session_id:
            seen.pointer_etag = doc.etag
        return pointer

    async def get(self, tenant_id: str, session_id: str) -> Session | None:
        doc = await self.docs.read(TENANT_DATA, (tenant_id, session_id), session_id)
        if doc is None or doc.body.get("type") != "session":
            return None
        return Session.model_validate(doc.body).model_copy(update={"etag": doc.etag})

    async def live(self, conversation_id: str) -> Session | None:
        session = await self.current(conversation_id)
        return session if session is not None and session.state.live else None

    async def current(self, conversation_id: str,
                      activity_id: str | None = None) -> Session | None:
        """The session the conversation points at, live or closed (None: never had one, or
        a start that died before writing its session). Raises StartInProgress while another
        turn is writing the conversation's new session, unless it is the one `activity_id`
        starts: a redelivery of that activity (the first process died, or is slow) writes it
        itself, and `begin` keeps the pointer."""
        where = self._where.get(conversation_id)
        session = await self.get(where.tenant_id, where.session_id) if where else None
        if session is not None and session.state == SessionState.TRANSFERRED and (
            session.transfer is not None
        ):
            nxt = session.transfer
            session = await self.get(nxt.to_tenant_id, nxt.to_session_id)
        if session is None or not session.state.live:
            pointer = await self.pointer(conversation_id)
            if pointer is None:
                return None
            if session is None or session.id != pointer.session_id:
                session = await self.get(pointer.tenant_id, pointer.session_id)
            if session is None:
                mine = activity_id is not None and (
                    pointer.session_id == new_session_id(conversation_id, activity_id))
                if self._starting(pointer) and not mine:
                    raise StartInProgress(f"{conversation_id}: session {pointer.session_id} "
                                          f"is being started")
                return None
            self.remember(session, pointer.etag)
            return session
        self.remember(session)
        return session

    async def transcript(self, tenant_id: str, session_id: str) -> list[TranscriptEntry]:
        """Every line of a session, in order (a session is one partition: bounded by itself)."""
        docs = await self.docs.query(
            TENANT_DATA, (tenant_id, session_id), {"type": "transcript"}, order_by="seq"
        )
        return [TranscriptEntry.model_validate(d.body) for d in docs]

    async def transcript_tail(self, tenant_id: str, session_id: str,
                              last: int) -> list[TranscriptEntry]:
        """About the last `last` lines the guest saw, in order, at the same cost whatever the
        chat's length (lines meant for agents only are left out)."""
        docs = await self.docs.query(
            TENANT_DATA, (tenant_id, session_id), {"type": "transcript"}, order_by="seq",
            descending=True, limit=last * 2,
        )
        lines = [TranscriptEntry.model_validate(d.body) for d in docs]
        lines = [line for line in lines if line.visible][:last]
        lines.reverse()
        return lines

    async def transcript_head(self, tenant_id: str, session_id: str,
                              first: int) -> list[TranscriptEntry]:
        """The first `first` lines of a session that the guest saw, in order."""
        docs = await self.docs.query(
            TENANT_DATA, (tenant_id, session_id), {"type": "transcript"}, order_by="seq",
            limit=first,
        )
        return [line for line in (TranscriptEntry.model_validate(d.body) for d in docs)
                if line.visible]

    async def entries(self, session: Session, seqs: list[int]) -> dict[int, TranscriptEntry]:
        """The lines with these sequence numbers (the messages a session owes)."""
        key = (session.tenant_id, session.id)
        out: dict[int, TranscriptEntry] = {}
        for seq in sorted(set(seqs)):
            doc = await self.docs.read(TENANT_DATA, key, entry_doc_id(session.id, seq))
            if doc is not None:
                out[seq] = TranscriptEntry.model_validate(doc.body)
        return out

    async def chain(self, session: Session) -> list[Session]:
        """This session and the ones it came from, oldest first (bounded by the hop log)."""
        out = [session]
        for hop in reversed(session.hop_log):
            if hop.to_session_id != out[0].id:
                continue
            prev = await self.get(hop.from_tenant_id, hop.from_session_id)
            if prev is None:
                break
            out.insert(0, prev)
        return out

    async def list(
        self,
        tenant_id: str | None = None,
        state: SessionState | None = None,
        limit: int = 100,
        phase: str | None = None,
    ) -> list[Session]:
        equals: dict[str, Any] = {"type": "session"}
        if state is not None:
            equals["state"] = state.value
        if phase is not None:
            if state is None:
                raise ValueError("a list by phase names the state too")
            equals["phase"] = phase
        docs = await self.docs.query(
            TENANT_DATA, None if tenant_id is None else (tenant_id,), equals,
            order_by="updated_at", descending=True, limit=limit,
        )
        return [Session.model_validate(d.body).model_copy(update={"etag": d.etag}) for d in docs]

    async def owing(self, limit: int = 100) -> list[Session]:
        """Sessions owing messages, earliest lease first (the sweep's work: it claims those
        whose lease ran out or whose owner died). Only messages in flight are owed, so this
        stays short whatever the history."""
        docs = await self.docs.query(
            TENANT_DATA, None, {"type": "session", "pending": True},
            order_by="pending_until", limit=limit,
        )
        return [Session.model_validate(d.body).model_copy(update={"etag": d.etag}) for d in docs]

    # -- writing ---------------------------------------------------------------------

    async def begin(self, session: Session, entries: list[TranscriptEntry] = (),
                    records: dict[str, dict[str, Any]] | None = None) -> Session:
        """Open a conversation's first (or next) session: point the conversation at it, then
        write it with its first lines.

        SessionConflict if the conversation already has a live session (another process, or
        a duplicate delivery, opened one first): the caller redoes its turn on that one. The
        pointer moves first, so that two starts cannot both win: a crash between the two
        writes leaves a pointer to a session that does not exist, which `current()` reports
        as a start in progress for one lease, and as nothing after it.
        """
        conversation_id = session.conversation_id
        pointer = await self.pointer(conversation_id)
        if pointer is not None and pointer.session_id != session.id:
            current = await self.get(pointer.tenant_id, pointer.session_id)
            if current is not None and current.state.live:
                raise SessionConflict(f"{conversation_id} already has session {current.id}")
            if current is None and self._starting(pointer):
                raise StartInProgress(f"{conversation_id} is being started")
        moved = ConversationPointer(
            conversation_id=conversation_id,
            session_id=session.id,
            tenant_id=session.tenant_id,
            moved_at=self.clock(),
            moved_by=self.owner or None,
            ttl=self.retention_seconds,
        )
        try:
            if pointer is None:
                doc = await self.docs.create(
                    CONVERSATIONS, conversation_id, conversation_id, moved.body()
                )
            elif pointer.session_id == session.id:
                doc = None  # a redelivered start: the pointer already moved
            else:
                doc = await self.docs.replace(
                    CONVERSATIONS, conversation_id, conversation_id, moved.body(), pointer.etag
                )
        except (AlreadyExists, PreconditionFailed):
            raise SessionConflict(f"{conversation_id} got another session first") from None
        self.step("begin:pointer")
        created = await self.create(session, entries, records)
        self.remember(created, doc.etag if doc is not None else None)
        return created

    def _records(self, session: Session, records: dict[str, dict[str, Any]]) -> list[WriteOp]:
        """A session's own documents besides its lines (an FAQ answer's record...), kept as
        long as its transcript: id `<session>:<name>`, `type` from the body."""
        ops = []
        for name, body in records.items():
            if "type" not in body:
                raise ValueError(f"record {name!r} of session {session.id} needs a `type`")
            ops.append(WriteOp("upsert", f"{session.id}:{name}", {
                **body, "sessionId": session.id, "ttl": self.retention_seconds}))
        return ops

    async def records(self, tenant_id: str | None, kind: str, *, since: str | None = None,
                      limit: int = 10_000) -> list[dict[str, Any]]:
        """A kind of record (`type`), newest first, in one department or all, since an ISO
        time (`at` field)."""
        docs = await self.docs.query(
            TENANT_DATA, None if tenant_id is None else (tenant_id,), {"type": kind},
            order_by="at", descending=True, limit=limit,
        )
        out = [d.body for d in docs]
        return [b for b in out if since is None or str(b.get("at", "")) >= since]

    async def create(self, session: Session, entries: list[TranscriptEntry] = (),
                     records: dict[str, dict[str, Any]] | None = None) -> Session:
        """Write a new session with its lines; a repeated create returns what is stored."""
        session.ttl = self.retention_seconds
        ops = [WriteOp("create", session.id, session.body())]
        ops += [WriteOp("upsert", e.doc_id, e.body()) for e in entries]
        ops += self._records(session, records or {})
        head, tail = _split(ops)
        key = (session.tenant_id, session.id)
        try:
            for chunk in tail:
                await self.docs.batch(TENANT_DATA, key, chunk)
            docs = await self.docs.batch(TENANT_DATA, key, head)
        except AlreadyExists:
            existing = await self.get(session.tenant_id, session.id)
            if existing is None:
                raise
            return existing
        return session.model_copy(update={"etag": docs[0].etag})

    async def save(self, session: Session, entries: list[TranscriptEntry] = (),
                   records: dict[str, dict[str, Any]] | None = None) -> Session:
        """Write the session (If-Match its ETag), new lines and records, all or nothing."""
        session = session.model_copy(update={"updated_at": utcnow(),
                                             "ttl": self.retention_seconds})
        ops = [WriteOp("replace", session.id, session.body(), session.etag)]
        ops += [WriteOp("upsert", e.doc_id, e.body()) for e in entries]
        ops += self._records(session, records or {})
        head, tail = _split(ops)
        key = (session.tenant_id, session.id)
        try:
            # lines beyond one batch go first: a session that fails its If-Match then leaves
            # lines past its own count, which the turn that redoes it overwrites
            for chunk in tail:
                await self.docs.batch(TENANT_DATA, key, chunk)
            docs = await self.docs.batch(TENANT_DATA, key, head)
        except (PreconditionFailed, NotFound) as exc:
            raise SessionConflict(session.id) from exc
        return session.model_copy(update={"etag": docs[0].etag})

    async def mark(self, entry: TranscriptEntry) -> None:
        """Record what became of a message (sent, failed, skipped): one write."""
        await self.docs.upsert(TENANT_DATA, (entry.tenant_id, entry.session_id), entry.doc_id,
                               entry.body())

    async def repoint(self, conversation_id: str, old_session_id: str, new: Session) -> None:
        """Move the pointer from `old_session_id` to `new`, if it still points there."""
        seen = self._where.get(conversation_id)
        etag = seen.pointer_etag if seen and seen.session_id == old_session_id else None
        moved = ConversationPointer(
            conversation_id=conversation_id, session_id=new.id, tenant_id=new.tenant_id,
            moved_at=self.clock(), moved_by=self.owner or None, ttl=self.retention_seconds,
        )
        for _ in range(5):
            if etag is None:
                pointer = await self.pointer(conversation_id)
                if pointer is None or pointer.session_id == new.id:
                    return
                if pointer.session_id != old_session_id:
                    return  # someone moved it elsewhere (a restart): theirs is the truth
                etag = pointer.etag
            try:
                doc = await self.docs.replace(
                    CONVERSATIONS, conversation_id, conversation_id, moved.body(), etag
                )
            except (PreconditionFailed, NotFound):
                etag = None
                continue
            self.remember(new, doc.etag)
            return
        raise SessionConflict(f"pointer of {conversation_id} kept changing")

    def _starting(self, pointer: ConversationPointer) -> bool:
        """A pointer to a session not written yet: a start under way, unless its process
        is known dead or it is older than a lease (then it died: start again)."""
        if pointer.moved_by and pointer.moved_by != self.owner and self.dead(pointer.moved_by):
            return False
        return self.clock() - pointer.moved_at < self.lease_seconds

    def remember(self, session: Session, pointer_etag: str | None = None) -> None:
        seen = self._where.get(session.conversation_id)
        if pointer_etag is None and seen is not None and seen.session_id == session.id:
            pointer_etag = seen.pointer_etag
        self._where[session.conversation_id] = _Seen(session.tenant_id, session.id, pointer_etag)
        self._where.move_to_end(session.conversation_id)
        while len(self._where) > self._cache_size:
            self._where.popitem(last=False)

    def forget(self, conversation_id: str) -> None:
        self._where.pop(conversation_id, None)

    def step(self, name: str) -> None:
        if self.fault is not None:
            self.fault(name)


def _split(ops: list[WriteOp]) -> tuple[list[WriteOp], list[list[WriteOp]]]:
    """The batch with the session's own write (first op) and as many lines as fit, and the
    lines that do not fit, in batches of their own."""
    head = ops[:MAX_BATCH]
    rest = ops[MAX_BATCH:]
    tail = [rest[i : i + MAX_BATCH] for i in range(0, len(rest), MAX_BATCH)]
    return head, tail
