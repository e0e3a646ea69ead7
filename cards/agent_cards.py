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
    body: list[dict[str, Any]] = [_title(f"New chat waiting in {view.tenant_name}")]
    facts = [("Guest", view.guest_name), ("Department", view.tenant_name)]
    if view.transferred_from:
        sent_by = f" by {view.transferred_by}" if view.transferred_by else ""
        facts.append(("Transferred from", f"{view.transferred_from}{sent_by}"))
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
    data = {"switchboard": {"verb": "accept", "session": view.session_id,
                            "tenant": view.tenant_id}}
    actions.append(_button("Accept", data, "accept", use_execute))
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
