"""Read models of the console besides the live view: a chat's page, and search.

A chat's page reads the chat's sessions along its hops (one point read each), their
transcripts (one query each: a session is its own partition) and their wait records. Search
reads the search digests of the closed chats in a date range (storage/fold.py: one small
document per chat, no transcripts), newest first, and the open chats of the departments;
its cost grows with the chats in the range, never with the whole history.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from console.auth import Viewer
from pipelines.config import SwitchboardConfig
from storage.documents import DocumentStore
from storage.fold import digest, words
from storage.layout import CONSOLE, TENANT_DATA
from storage.models import Session, SessionState, TranscriptEntry
from storage.sessions import SessionStore

TRANSFER_KEYS = tuple(f"Session.Transferred{side}.{part}" for side in ("From", "To")
                      for part in ("SessionId", "TenantId", "TenantName"))
SEARCH_LIMIT = 200
# digests one search reads at most (a page of the newest, then older pages)
SEARCH_SCAN = 5_000


def card_text(node: Any) -> list[str]:
    """What a person reads on a card: its texts, titles and facts."""
    out: list[str] = []
    if isinstance(node, dict):
        if node.get("type") == "Fact":
            out.append(f"{node.get('title', '')}: {node.get('value', '')}")
        else:
            for key in ("text", "title"):
                if isinstance(node.get(key), str) and node.get("type") != "Input.Text":
                    out.append(node[key])
            for value in node.values():
                if isinstance(value, dict | list):
                    out.extend(card_text(value))
    elif isinstance(node, list):
        for item in node:
            out.extend(card_text(item))
    return out


class ChatNotFound(Exception):
    pass


class Views:
    def __init__(self, config: SwitchboardConfig, docs: DocumentStore,
                 sessions: SessionStore) -> None:
        self.config = config
        self.docs = docs
        self.sessions = sessions

    def _tenant_name(self, tenant_id: str) -> str:
        try:
            return self.config.tenant(tenant_id).name
        except KeyError:
            return tenant_id

    def _speaker(self, session: Session, sender: str) -> str:
        if sender == "guest":
            return str(session.metadata.get("Guest.Name") or "Guest")
        if sender.startswith("agent:"):
            agent_id = sender.split(":", 1)[1]
            for tenant in self.config.tenants:
                agent = tenant.agent(agent_id)
                if agent is not None:
                    return agent.name
            return "Agent"
        return "Bot"

    async def chat(self, viewer: Viewer, tenant_id: str, session_id: str) -> dict[str, Any]:
        """A chat's page. ChatNotFound when it does not exist or the viewer may not see it
        (the two are not told apart)."""
        if not viewer.may(tenant_id):
            raise ChatNotFound(session_id)
        session = await self.sessions.get(tenant_id, session_id)
        if session is None:
            raise ChatNotFound(session_id)
        # the hops before it (as its agents see them) and after it, where the viewer may
        earlier = await self.sessions.chain(session)
        later: list[Session] = []
        current = session
        for _ in range(self.config.max_transfer_hops + 1):
            intent = current.transfer
            if intent is None or not viewer.may(intent.to_tenant_id):
                break
            nxt = await self.sessions.get(intent.to_tenant_id, intent.to_session_id)
            if nxt is None:
                break
            later.append(nxt)
            current = nxt
        hops = [*earlier, *later]
        transcript = []
        for hop in hops:
            for line in await self.sessions.transcript(hop.tenant_id, hop.id):
                transcript.append(self._line(hop, line))
        waits = []
        for hop in hops:
            found = await self.docs.query(TENANT_DATA, (hop.tenant_id, hop.id), {"type": "wait"})
            waits += [{**d.body, "tenant": hop.tenant_id} for d in found]
        return {
            "session": _session_summary(session, self._tenant_name(session.tenant_id)),
            "metadata": dict(sorted(session.metadata.items())),
            "transferred": {k: session.metadata.get(k) for k in TRANSFER_KEYS},
            "hops": [_session_summary(h, self._tenant_name(h.tenant_id)) for h in hops],
            "transcript": transcript,
            "timeline": self._timeline(hops, transcript, waits),
            "feedback": {k: v for k, v in session.metadata.items()
                         if k.endswith((".Rating", ".Comment"))},
            "agents": [{"id": a.aad_object_id, "name": a.name}
                       for a in self.config.tenant(tenant_id).agents]
            if tenant_id in {t.id for t in self.config.tenants} else [],
        }

    def _line(self, session: Session, line: TranscriptEntry) -> dict[str, Any]:
        if line.direction.value == "in" or line.sender.startswith("agent:"):
            speaker = self._speaker(session, line.sender)
        else:
            speaker = "Bot"
        text = line.text or ""
        if line.card is not None:
            text = "\n".join(card_text(line.card.get("body", line.card))) or text
        if not text and line.value:
            text = ", ".join(f"{k}: {v}" for k, v in line.value.items()
                             if not str(k).startswith("_") and k not in ("session", "stage",
                                                                         "verb"))
        return {"at": line.at, "department": self._tenant_name(session.tenant_id),
                "tenant": session.tenant_id, "speaker": speaker, "to": line.to,
                "text": text, "visible": line.visible, "status": line.status,
                "purpose": line.purpose}

    def _timeline(self, hops: list[Session], transcript: list[dict[str, Any]],
                  waits: list[dict[str, Any]]) -> list[dict[str, str]]:
        events: list[dict[str, str]] = []
        first = hops[0]
        events.append({"at": first.created_at, "what": "started",
                       "detail": self._tenant_name(first.tenant_id)})
        for hop in hops[-1].hop_log if hops else []:
            by = hop.by_name or ("the pipeline" if hop.by == "pipeline" else hop.by)
            events.append({"at": hop.at, "what": "transferred",
                           "detail": f"{hop.from_tenant_name} to {hop.to_tenant_name}, by {by}"})
        for line in transcript:
            if line["purpose"] == "offer":
                to = str(line["to"] or "").split(":", 1)[-1]
                name = next((a.name for t in self.config.tenants
                             if (a := t.agent(to)) is not None), to)
                events.append({"at": line["at"], "what": "offered",
                               "detail": f"to {name} ({line['department']})"})
        for wait in waits:
            outcome = str(wait.get("outcome"))
            detail = f"after {round(float(wait.get('waited') or 0))} s"
            if outcome == "answered":
                by = " (assigned by a supervisor)" if str(wait.get("by") or "").startswith(
                    "supervisor:") else ""
                events.append({"at": wait["at"], "what": "accepted",
                               "detail": f"by {wait.get('agent_name')} {detail}{by}"})
            else:
                events.append({"at": wait["at"], "what": f"wait {outcome}", "detail": detail})
        last = hops[-1]
        if last.closed_at:
            events.append({"at": last.closed_at, "what": "ended", "detail": last.state.value})
        for hop in hops[:-1]:
            if hop.closed_at and hop.state != SessionState.TRANSFERRED:
                events.append({"at": hop.closed_at, "what": "ended", "detail": hop.state.value})
        events.sort(key=lambda e: e["at"])
        return events

    # -- search ------------------------------------------------------------------------

    async def search(self, viewer: Viewer, *, name: str = "", text: str = "",
                     tenant: str | None = None, state: str | None = None,
                     since: datetime | None = None, until: datetime | None = None
                     ) -> list[dict[str, Any]]:
        now = datetime.now(UTC)
        until = until or now + timedelta(minutes=1)
        since = since or until - timedelta(days=7)
        tenants = [t.id for t in self.config.tenants if viewer.may(t.id)
                   and (tenant is None or t.id == tenant)]
        wanted_words = words([text])
        name_key = name.strip().casefold()
        out: list[dict[str, Any]] = []
        for tenant_id in tenants:
            candidates: list[dict[str, Any]] = []
            if state in (None, "", "open"):
                for session in await self.sessions.list(tenant_id, SessionState.OPEN,
                                                        limit=SEARCH_LIMIT):
                    if _iso(since) <= session.created_at <= _iso(until):
                        body = session.body()
                        body["tenantId"] = session.tenant_id
                        candidates.append(await digest(self.docs, body, 1)
                                          if wanted_words else _plain_digest(body))
            if state != "open":
                candidates += await self._digests(tenant_id, since, until)
            for found in candidates:
                if state and state != found.get("state"):
                    continue
                if name_key and name_key not in str(found.get("guest_key", "")):
                    continue
                have = found.get("words") or []
                if wanted_words and not all(any(w.startswith(q) for w in have)
                                            for q in wanted_words):
                    continue
                out.append({k: found.get(k) for k in (
                    "session_id", "tenant_id", "guest", "state", "created_at", "closed_at",
                    "agent")} | {"department": self._tenant_name(found["tenant_id"])})
        out.sort(key=lambda r: str(r.get("created_at")), reverse=True)
        return out[:SEARCH_LIMIT]

    async def _digests(self, tenant_id: str, since: datetime, until: datetime
                       ) -> list[dict[str, Any]]:
        found = await self.docs.query(CONSOLE, tenant_id, {"type": "digest"},
                                      order_by="created_at", descending=True,
                                      limit=SEARCH_SCAN,
                                      at_most={"created_at": _iso(until)})
        low = _iso(since)
        return [d.body for d in found if str(d.body.get("created_at")) >= low]


def _plain_digest(body: dict[str, Any]) -> dict[str, Any]:
    name = str((body.get("metadata") or {}).get("Guest.Name") or "")
    return {"session_id": body["id"], "tenant_id": body["tenantId"],
            "created_at": body.get("created_at"), "closed_at": body.get("closed_at"),
            "state": body.get("state"), "guest": name, "guest_key": name.casefold(),
            "agent": (body.get("metadata") or {}).get("Agent.Name"), "words": []}


def _session_summary(session: Session, tenant_name: str) -> dict[str, Any]:
    return {"id": session.id, "tenant": session.tenant_id, "department": tenant_name,
            "state": session.state.value, "phase": session.phase.value,
            "stage": session.stage_key, "created_at": session.created_at,
            "closed_at": session.closed_at, "guest": session.metadata.get("Guest.Name"),
            "agent": session.agent.agent_name if session.agent else None,
            "hops": session.hops}


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")
