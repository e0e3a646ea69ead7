"""The bot's own cards, built from plain typed arguments (never bound as templates).

Why text that may come from a guest goes into a `TextRun`: a TextBlock renders markdown, so a
guest's `[click here](https://...)` would become a link in an agent's card; a TextRun shows
text exactly as typed. Text the admin wrote (prompts, titles) stays in TextBlocks so admins can
use markdown.

Every button carries `{"switchboard": {"verb", "session", "stage", ...}}` as its data, so the
bot can route the click to the right session and stage and ignore stale cards.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "CARD_VERSION",
    "CONTAINER_STYLES",
    "chosen_card",
    "faq_card",
    "feedback_card",
    "help_card",
    "menu_card",
    "question_card",
    "text_card",
]

CARD_VERSION = "1.5"
CONTAINER_STYLES = frozenset({"default", "emphasis", "good", "attention", "warning", "accent"})
# Teams shows at most this many buttons in a card's action bar; longer menus stack in the body.
MAX_ACTION_BAR_BUTTONS = 5

Card = dict[str, Any]


def _card(body: list[dict[str, Any]], actions: list[dict[str, Any]] | None = None) -> Card:
    card: Card = {"type": "AdaptiveCard", "version": CARD_VERSION, "body": body}
    if actions:
        card["actions"] = actions
    return card


def _text_block(text: str, **extra: Any) -> dict[str, Any]:
    return {"type": "TextBlock", "text": text, "wrap": True, **extra}


def _plain_text(text: str, **run: Any) -> dict[str, Any]:
    """Text shown exactly as typed: no markdown."""
    return {"type": "RichTextBlock", "inlines": [{"type": "TextRun", "text": text, **run}]}


def _title(text: str) -> dict[str, Any]:
    return _text_block(text, style="heading", size="Medium", weight="Bolder")


def _button(title: str, data: dict[str, Any], verb: str, use_execute: bool) -> dict[str, Any]:
    if use_execute:
        return {"type": "Action.Execute", "title": title, "verb": verb, "data": data}
    return {"type": "Action.Submit", "title": title, "data": data}


def _data(verb: str, session_id: str, stage_key: str, **more: str) -> dict[str, Any]:
    return {"switchboard": {"verb": verb, "session": session_id, "stage": stage_key, **more}}


def text_card(text: str, *, title: str | None = None, style: str | None = None) -> Card:
    """A message: optional title, then `text` shown as plain text; `style` colours a container."""
    body = ([_title(title)] if title else []) + [_plain_text(text)]
    if style is None:
        return _card(body)
    if style not in CONTAINER_STYLES:
        raise ValueError(f"style must be one of {sorted(CONTAINER_STYLES)}, not {style!r}")
    return _card([{"type": "Container", "style": style, "items": body}])


def question_card(
    prompt: str,
    *,
    session_id: str,
    stage_key: str,
    placeholder: str | None,
    choices: list[str] | None,
    multiline: bool,
    use_execute: bool,
    required: bool = True,
) -> Card:
    """A question with a text box (or, with `choices`, radio buttons) named `answer`, and Send."""
    field: dict[str, Any]
    if choices:
        field = {
            "type": "Input.ChoiceSet",
            "id": "answer",
            "style": "expanded",
            "choices": [{"title": c, "value": c} for c in choices],
            "isRequired": required,
            "errorMessage": "Please choose one.",
        }
    else:
        field = {
            "type": "Input.Text",
            "id": "answer",
            "isMultiline": multiline,
            "isRequired": required,
            "errorMessage": "Please type an answer.",
        }
    if placeholder:
        field["placeholder"] = placeholder
    send = _button("Send", _data("answer", session_id, stage_key), "answer", use_execute)
    return _card([_text_block(prompt), field], [send])


def menu_card(
    prompt: str,
    choices: list[tuple[str, str]],
    *,
    session_id: str,
    stage_key: str,
    use_execute: bool,
) -> Card:
    """The prompt and one button per (choice id, title)."""
    buttons = [
        _button(title, _data("choose", session_id, stage_key, choice=choice_id), "choose",
                use_execute)
        for choice_id, title in choices
    ]
    if len(buttons) <= MAX_ACTION_BAR_BUTTONS:
        return _card([_text_block(prompt)], buttons)
    stacked = [{"type": "ActionSet", "actions": [button]} for button in buttons]
    return _card([_text_block(prompt), *stacked])


def chosen_card(prompt: str, chosen_title: str) -> Card:
    """What a menu (or question) card becomes once answered: prompt and choice, no buttons."""
    return _card([
        _text_block(prompt, isSubtle=True),
        _plain_text(f"\u2714 {chosen_title}", weight="Bolder"),
    ])


def help_card(commands: list[tuple[str, str]], *, where: str | None) -> Card:
    """The commands a guest (or agent) can type, and optionally where in the help desk they are."""
    body: list[dict[str, Any]] = [_title("Help")]
    if where:
        body.append(_plain_text(where))
    if commands:
        facts = [{"title": command, "value": description} for command, description in commands]
        body.append({"type": "FactSet", "facts": facts})
    else:
        body.append(_text_block("There are no commands here."))
    return _card(body)


def faq_card(
    prompt: str,
    articles: list[tuple[str, str, str, str | None]],
    *,
    session_id: str,
    stage_key: str,
    use_execute: bool,
) -> Card:
    """Knowledge-base answers: per (id, title, answer, link) its title, answer, a link to the
    full article and "This solved it"; then "I still need help" for the whole card.

    Titles and answers are the admin's articles (markdown allowed), never the guest's text.
    """
    body: list[dict[str, Any]] = [_text_block(prompt)]
    for article_id, title, answer, link in articles:
        buttons = [
            _button("This solved it", _data("solved", session_id, stage_key, choice=article_id),
                    "solved", use_execute)
        ]
        if link:
            buttons.append({"type": "Action.OpenUrl", "title": "Read the article", "url": link})
        body.append({
            "type": "Container",
            "style": "emphasis",
            "separator": True,
            "items": [
                _text_block(title, weight="Bolder"),
                _text_block(answer),
                {"type": "ActionSet", "actions": buttons},
            ],
        })
    more = _button("I still need help", _data("more", session_id, stage_key), "more", use_execute)
    return _card(body, [more])


RATING_LABELS = {1: "Poor", 2: "Fair", 3: "Good", 4: "Very good", 5: "Excellent"}


def feedback_card(
    prompt: str,
    *,
    session_id: str,
    stage_key: str,
    use_execute: bool,
    style: str = "choices",
    comment: bool = True,
    comment_placeholder: str | None = None,
    max_comment_length: int = 1000,
    skippable: bool = True,
) -> Card:
    """A rating from 1 to 5 (radio buttons named `rating` and Send, or one button per rating)
    and an optional comment box named `comment`; Skip sends no input."""
    body: list[dict[str, Any]] = [_text_block(prompt)]
    actions: list[dict[str, Any]] = []
    if style == "choices":
        body.append({
            "type": "Input.ChoiceSet",
            "id": "rating",
            "style": "expanded",
            "label": "Your rating",
            "choices": [
                {"title": f"{n} - {label}", "value": str(n)}
                for n, label in sorted(RATING_LABELS.items(), reverse=True)
            ],
            "isRequired": True,
            "errorMessage": "Please choose a rating.",
        })
    if comment:
        box: dict[str, Any] = {
            "type": "Input.Text",
            "id": "comment",
            "label": "Comment (optional)",
            "isMultiline": True,
            "maxLength": max_comment_length,
        }
        if comment_placeholder:
            box["placeholder"] = comment_placeholder
        body.append(box)
    if style == "choices":
        actions.append(_button("Send", _data("answer", session_id, stage_key), "answer",
                               use_execute))
    else:
        body.append({
            "type": "ActionSet",
            "actions": [
                _button(str(n), _data("rate", session_id, stage_key, choice=str(n)), "rate",
                        use_execute)
                for n in sorted(RATING_LABELS)
            ],
        })
    if skippable:
        skip = _button("Skip", _data("skip", session_id, stage_key), "skip", use_execute)
        skip["associatedInputs"] = "none"
        actions.append(skip)
    return _card(body, actions)
