"""Cards an agent sees: the offer, its "taken" update, relayed messages, their own status.

Guest text (answers, transcript lines, relayed messages) goes into TextRuns, never markdown.
Everything is kept well under Teams' 28 KB limit: long transcripts are cut to the latest lines.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from cards.builders import Card, _button, _card, _plain_text, _text_block, _title

MAX_LINE = 300
SUMMARY_LINES = 6
FULL_LINES = 60
SIZE_BUDGET = 24_000


@dataclass(frozen=True)
class Line:
    who: str
    text: str


@dataclass(frozen=True)
class OfferView:
    session_id: str
    tenant_id: str
    tenant_name: str
    guest_name: str
    answers: list[tuple[str, str]]
    transferred_from: str | None = None
    transferred_by: str | None = None
    earlier: tuple[Line, ...] = ()
    # the skills the chat requires, in words; the escalation tier it is offered in
    skills: str | None = None
    tier: str | None = None


def _facts(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    return {"type": "FactSet", "facts": [{"title": k, "value": _cut(v)} for k, v in pairs]}


def _cut(text: str) -> str:
    if len(text) <= MAX_LINE:
        return text
    return text[:MAX_LINE].rsplit(" ", 1)[0] + "…"


def _lines(lines: tuple[Line, ...] | list[Line]) -> dict[str, Any]:
    inlines: list[dict[str, Any]] = []
    for line in lines:
        inlines.append({"type": "TextRun", "text": f"{line.who}: ", "weight": "Bolder"})
        inlines.append({"type": "TextRun", "text": _cut(line.text) + "\n"})
    return {"type": "RichTextBlock", "inlines": inlines}


def offer_card(view: OfferView, *, use_execute: bool = True) -> Card:
    """A chat waiting for an agent: who, what they said so far, where it came from, Accept."""
    data = {"switchboard": {"verb": "accept", "session": view.session_id,
                            "tenant": view.tenant_id}}
    return _offer(view, f"New chat waiting in {view.tenant_name}", data, use_execute)


def consult_offer_card(view: OfferView, asked_by: str, *, use_execute: bool = True) -> Card:
    """A private request to consult on another agent's chat: the chat so far, Accept."""
    data = {"switchboard": {"verb": "consult", "session": view.session_id,
                            "tenant": view.tenant_id}}
    note = (f"{asked_by} would like your help with this chat. Only you and {asked_by} see "
            f"what you say: {view.guest_name} is not told.")
    return _offer(view, f"{asked_by} asks you to consult", data, use_execute, note=note)


def _offer(view: OfferView, title: str, data: dict[str, Any], use_execute: bool, *,
           note: str | None = None) -> Card:
    body: list[dict[str, Any]] = [_title(title)]
    if note:
        body.append(_plain_text(note))
    facts = [("Guest", view.guest_name), ("Department", view.tenant_name)]
    if view.transferred_from:
        sent_by = f" by {view.transferred_by}" if view.transferred_by else ""
        facts.append(("Transferred from", f"{view.transferred_from}{sent_by}"))
    if view.skills:
        facts.append(("Skills needed", view.skills))
    if view.tier:
        facts.append(("Offered to", view.tier))
    body.append(_facts(facts))
    if view.answers:
        body.append(_text_block("Answers so far", weight="Bolder"))
        body.append(_facts(view.answers))
    actions: list[dict[str, Any]] = []
    if view.earlier:
        # what the guest said (the bot's own lines are in the whole transcript)
        said = [line for line in view.earlier if line.who != "Bot"] or list(view.earlier)
        if len(said) > SUMMARY_LINES:  # their first words (the request), then the latest
            said = [said[0], *said[-(SUMMARY_LINES - 1):]]
        body.append(_text_block("Earlier in this chat", weight="Bolder"))
        body.append(_lines(said))
    actions.append(_button("Accept", data, data["switchboard"]["verb"], use_execute))
    if len(view.earlier) > SUMMARY_LINES:
        full = list(view.earlier[-FULL_LINES:])
        while full:
            show = {
                "type": "Action.ShowCard",
                "title": f"Whole transcript ({len(view.earlier)} lines)",
                "card": _card([_lines(full)]),
            }
            candidate = _card(body, [*actions, show])
            if len(json.dumps(candidate)) <= SIZE_BUDGET:
                return candidate
            full = full[len(full) // 4 + 1:]
    return _card(body, actions)


def taken_card(guest_name: str, tenant_name: str, taken_by: str) -> Card:
    """What every other offer card becomes once someone accepted."""
    return _card([
        _text_block(f"Chat with {guest_name} ({tenant_name})", weight="Bolder"),
        _text_block(f"Taken by {taken_by}.", isSubtle=True),
    ])


def closed_offer_card(guest_name: str, tenant_name: str, why: str) -> Card:
    return _card([
        _text_block(f"Chat with {guest_name} ({tenant_name})", weight="Bolder"),
        _plain_text(why),
    ])


def accepted_card(guest_name: str, tenant_name: str) -> Card:
    """The accepting agent's offer card, replaced in place."""
    return _card([
        _title(f"You're chatting with {guest_name}"),
        _text_block(
            f"{tenant_name}. Type to reply. Commands: **end** to finish, "
            "**transfer <department>** to hand over, **help** for more.",
        ),
    ])


def relay_card(who: str, text: str) -> Card:
    """A message relayed between guest and agent, marked with who said it."""
    return _card([
        {"type": "RichTextBlock", "inlines": [
            {"type": "TextRun", "text": f"{who}: ", "weight": "Bolder"},
            {"type": "TextRun", "text": text[:4000]},
        ]},
    ])


def consult_joined_card(guest_name: str, tenant_name: str, asked_by: str) -> Card:
    """The consulted agent's request card, replaced once they joined."""
    return _card([
        _title(f"You're consulting with {asked_by}"),
        _plain_text(f"On {asked_by}'s chat with {guest_name} ({tenant_name})."),
        _text_block(f"What you type goes to {asked_by} only: the guest sees none of it. "
                    f"{asked_by} may hand you the chat. **end consult** to leave."),
    ])


def handover_card(from_name: str, to_name: str, tenant_name: str) -> Card:
    """The guest's card when their agent hands them to the agent they consulted."""
    return _card([
        _text_block(f"{from_name} has handed your chat to {to_name}", weight="Bolder"),
        _plain_text(f"{to_name} ({tenant_name}) can see everything so far and will carry on "
                    "from here."),
    ])
