"""Sessions, transcripts and the conversation pointer, on any DocumentStore.

Layout: sessions and their transcript entries live in `tenant_data`, partitioned by the
tenant id, so one batch writes a session and its new transcript lines in one round trip.
The pointer lives in `conversations`, partitioned by the conversation id.

A guest turn costs two round trips: the session is read from the location this process
last saw for the conversation (the pointer is read only on a miss), and written back with
its ETag. A stale location is safe: a session that moved away is closed, so its state says
where it went, and its ETag changed, so a write against it fails.
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from storage.documents import (
    AlreadyExists,
    DocumentStore,
    PreconditionFailed,
    WriteOp,
)
from storage.models import (
    ConversationPointer,
    Session,
    SessionState,
    TranscriptEntry,
    utcnow,
)

TENANT_DATA = "tenant_data"
CONVERSATIONS = "conversations"


class SessionConflict(Exception):
    """Someone else changed the session first; reload and decide again."""


def new_session_id() -> str:
    return uuid.uuid4().hex


class SessionStore:
    def __init__(
        self,
        docs: DocumentStore,
        *,
        location_cache_size: int = 2_000,
        fault: Callable[[str], None] | None = None,
    ) -> None:
        self.docs = docs
        # conversation id -> (tenant id, session id) this process last saw
        self._where: OrderedDict[str, tuple[str, str]] = OrderedDict()
        self._cache_size = location_cache_size
        # test hook: called after each rehome step; raising there simulates a crash
        self.fault = fault

    # -- reading ---------------------------------------------------------------------

    async def pointer(self, conversation_id: str) -> ConversationPointer | None:
        doc = await self.docs.read(CONVERSATIONS, conversation_id, conversation_id)
        if doc is None:
            return None
        return ConversationPointer.model_validate(doc.body).model_copy(update={"etag": doc.etag})

    async def get(self, tenant_id: str, session_id: str) -> Session | None:
        doc = await self.docs.read(TENANT_DATA, tenant_id, session_id)
        if doc is None or doc.body.get("type") != "session":
            return None
        return Session.model_validate(doc.body).model_copy(update={"etag": doc.etag})

    async def live(self, conversation_id: str) -> Session | None:
        """The conversation's live session, finishing a rehome left half-done."""
        session = await self.current(conversation_id)
        return session if session is not None and session.state.live else None

    async def current(self, conversation_id: str) -> Session | None:
        """The session the conversation points at, live or closed (None: never had one)."""
        from storage.rehome import finish_rehome  # rehome imports this module

        where = self._where.get(conversation_id)
        session = await self.get(*where) if where else None
        if session is None or not session.state.live:
            if session is not None and session.state == SessionState.TRANSFERRED:
                nxt = session.transfer
                session = await self.get(nxt.to_tenant_id, nxt.to_session_id) if nxt else None
            if session is None or not session.state.live:
                pointer = await self.pointer(conversation_id)
                if pointer is None:
                    return None
                session = await self.get(pointer.tenant_id, pointer.session_id)
        if session is None:
            return None
        if session.state == SessionState.TRANSFERRING:
            session = await finish_rehome(self, session)
        elif not session.started and session.hop_log:
            # just rehomed: a crash may have left the sending side open (after `pointer`)
            hop = session.hop_log[-1]
            source = await self.get(hop.from_tenant_id, hop.from_session_id)
            if source is not None and source.state == SessionState.TRANSFERRING:
                session = await finish_rehome(self, source)
        self.remember(session)
        return session

    async def transcript(self, tenant_id: str, session_id: str) -> list[TranscriptEntry]:
        docs = await self.docs.query(
            TENANT_DATA,
            tenant_id,
            {"type": "transcript", "sessionId": session_id},
            order_by="seq",
        )
        return [TranscriptEntry.model_validate(d.body) for d in docs]

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
            equals["phase"] = phase
        docs = await self.docs.query(
            TENANT_DATA, tenant_id, equals, order_by="updated_at", descending=True, limit=limit
        )
        return [Session.model_validate(d.body).model_copy(update={"etag": d.etag}) for d in docs]

    # -- writing ---------------------------------------------------------------------

    async def begin(self, session: Session, reference: dict[str, Any]) -> Session:
        """Open a conversation's first (or next) session and point the conversation to it.

        SessionConflict if the conversation already has a live session (another process, or
        a duplicate delivery, opened one first): the caller redoes its turn on that one.
        """
        conversation_id = session.conversation_id
        pointer = await self.pointer(conversation_id)
        if pointer is not None:
            current = await self.get(pointer.tenant_id, pointer.session_id)
            if current is not None and current.state.live:
                raise SessionConflict(f"{conversation_id} already has session {current.id}")
        doc = await self.docs.create(TENANT_DATA, session.tenant_id, session.id, session.body())
        session = session.model_copy(update={"etag": doc.etag})
        moved = ConversationPointer(
            conversation_id=conversation_id,
            session_id=session.id,
            tenant_id=session.tenant_id,
            reference=reference,
        )
        try:
            if pointer is None:
                await self.docs.create(CONVERSATIONS, conversation_id, conversation_id,
                                       moved.body())
            else:
                await self.docs.replace(CONVERSATIONS, conversation_id, conversation_id,
                                        moved.body(), pointer.etag)
        except (AlreadyExists, PreconditionFailed):
            # someone else moved the pointer first: ours must not linger as an orphan
            await self.docs.delete(TENANT_DATA, session.tenant_id, session.id)
            raise SessionConflict(f"{conversation_id} got another session first") from None
        self.remember(session)
        return session

    async def save(self, session: Session, entries: list[TranscriptEntry] = ()) -> Session:
        """Write the session (If-Match its ETag) and new transcript lines, all or nothing."""
        session = session.model_copy(update={"updated_at": utcnow()})
        ops = [WriteOp("replace", session.id, session.body(), session.etag)]
        ops += [WriteOp("upsert", e.doc_id, e.body()) for e in entries]
        try:
            docs = await self.docs.batch(TENANT_DATA, session.tenant_id, ops)
        except PreconditionFailed as exc:
            raise SessionConflict(session.id) from exc
        return session.model_copy(update={"etag": docs[0].etag})

    async def create_or_get(self, session: Session) -> Session:
        """Idempotent create: a resumed step finds what the crashed one made."""
        try:
            doc = await self.docs.create(TENANT_DATA, session.tenant_id, session.id, session.body())
            return session.model_copy(update={"etag": doc.etag})
        except AlreadyExists:
            existing = await self.get(session.tenant_id, session.id)
            assert existing is not None
            return existing

    async def repoint(self, conversation_id: str, old_session_id: str, new: Session) -> None:
        """Move the pointer from `old_session_id` to `new`, if it still points there."""
        for _ in range(5):
            pointer = await self.pointer(conversation_id)
            if pointer is None or pointer.session_id == new.id:
                return
            if pointer.session_id != old_session_id:
                return  # someone moved it elsewhere (a restart): theirs is the truth
            moved = pointer.model_copy(
                update={"session_id": new.id, "tenant_id": new.tenant_id, "updated_at": utcnow()}
            )
            try:
                await self.docs.replace(
                    CONVERSATIONS, conversation_id, conversation_id, moved.body(), pointer.etag
                )
                return
            except PreconditionFailed:
                continue
        raise SessionConflict(f"pointer of {conversation_id} kept changing")

    def remember(self, session: Session) -> None:
        self._where[session.conversation_id] = (session.tenant_id, session.id)
        self._where.move_to_end(session.conversation_id)
        while len(self._where) > self._cache_size:
            self._where.popitem(last=False)

    def forget(self, conversation_id: str) -> None:
        self._where.pop(conversation_id, None)

    def step(self, name: str) -> None:
        if self.fault is not None:
            self.fault(name)
