"""What an offer card shows of a chat: the guest, their answers, where it came from, and the
chat so far in words (the guest's first words and the latest lines, across transfers).

It reads a bounded number of lines whatever the chat's length: the first few lines of the
chat's first session (the guest's request) and the last `FULL_LINES` lines the guest saw,
newest sessions first, through the transfer chain.
"""

from __future__ import annotations

import re
from typing import Any

from cards.agent_cards import FULL_LINES, Line, OfferView
from cards.text import card_text
from pipelines.config import SwitchboardConfig
from storage.models import Session, TranscriptEntry
from storage.sessions import SessionStore

# lines read from the start of the chat to find the guest's first words
HEAD_LINES = 6


async def offer_view(config: SwitchboardConfig, sessions: SessionStore,
                     session: Session) -> OfferView:
    tenant = config.tenant(session.tenant_id)
    answers = [
        (answer_label(key.removeprefix("Answers."), session.tenant_id, tenant.name), str(value))
        for key, value in sorted(session.metadata.items())
        if key.startswith("Answers.") and value not in (None, "")
    ]
    chain = await sessions.chain(session)
    latest: list[Line] = []
    seen: set[tuple[str, int]] = set()
    for previous in reversed(chain):
        want = FULL_LINES - len(latest)
        if want <= 0:
            break
        lines = await sessions.transcript_tail(previous.tenant_id, previous.id, want)
        latest = [_line(e, previous) for e in lines] + latest
        seen.update((previous.id, e.seq) for e in lines)
    first = chain[0]
    head = await sessions.transcript_head(first.tenant_id, first.id, HEAD_LINES)
    opening = next((e for e in head if e.sender == "guest" and (first.id, e.seq) not in seen),
                   None)
    earlier = ([_line(opening, first)] if opening is not None else []) + latest
    last = session.hop_log[-1] if session.hop_log else None
    came_from = last.from_tenant_name if last and last.to_session_id == session.id else None
    return OfferView(
        session_id=session.id,
        tenant_id=tenant.id,
        tenant_name=tenant.name,
        guest_name=str(session.metadata.get("Guest.Name") or "A guest"),
        answers=answers,
        transferred_from=came_from,
        transferred_by=last.by_name if came_from and last else None,
        earlier=tuple(earlier),
    )


def answer_label(name: str, tenant_id: str, tenant_name: str) -> str:
    """`EmployeeNumber` -> `Employee number`; HR's `HrTopic` -> `Topic` (the department is
    on the card already); words in capitals stay so (`VPNRegion` -> `VPN region`)."""
    words = re.findall(r"[A-Z]+(?![a-z])|[A-Z]?[a-z0-9]+", name) or [name]
    owners = {tenant_id.casefold(), tenant_name.casefold().replace(" ", "")}
    if len(words) > 1 and words[0].casefold() in owners:
        words = words[1:]
    out = [w if w.isupper() and len(w) > 1 else w.lower() for w in words]
    first = out[0]
    out[0] = first if first.isupper() else first[:1].upper() + first[1:]
    return " ".join(out)


def _line(entry: TranscriptEntry, session: Session) -> Line:
    if entry.sender == "guest":
        who = str(session.metadata.get("Guest.Name") or "Guest")
    elif entry.sender.startswith("agent:"):
        who = str(session.metadata.get("Agent.Name") or "Agent")
    else:
        who = "Bot"
    text = entry.text or _pressed(entry.value) or _card_words(entry.card) or "(card response)"
    return Line(who, " ".join(text.split()))


_PRESSED = {"more": "I still need help", "solved": "This solved it", "cancel": "Stop waiting",
            "skip": "Skip"}


def _pressed(value: dict[str, Any] | None) -> str:
    """What a card submit said, in words: the answer typed, or the button pressed."""
    if not isinstance(value, dict):
        return ""
    if isinstance(value.get("answer"), str) and value["answer"].strip():
        return value["answer"]
    data = value.get("switchboard") if isinstance(value.get("switchboard"), dict) else {}
    if isinstance(data.get("choice"), str):
        return f"(chose {data['choice']})"
    if isinstance(value.get("rating"), str | int):
        return f"(rated {value['rating']})"
    return f"({_PRESSED[data['verb']]})" if data.get("verb") in _PRESSED else ""


def _card_words(card: dict[str, Any] | None) -> str:
    """A card's text without its buttons ("[Send]")."""
    if not card:
        return ""
    lines = card_text(card).splitlines()
    return " ".join(line for line in lines if not (line.startswith("[") and line.endswith("]")))
