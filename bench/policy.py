"""How a benchmark guest answers whatever card the bot sends: a small policy, not a script.

The help desk's configuration changes (an FAQ step, business hours, feedback...), so the
guest reads each card it gets and reacts to what the card asks:

- "I still need help" on an FAQ card: pressed (the guest wants a person, not an article);
- a card with inputs (a question, a feedback form): every input gets a valid value (the first
  choice of an `Input.ChoiceSet`, the best rating; for `Input.Text`, a text that satisfies
  the stage's `pattern` when the configuration has one, e.g. "E12345"), then the card's first
  button that sends the inputs (not "Skip");
- a menu (buttons only): the department button (HR by default, as in the seed scenario);
- rating buttons ("1".."5"): the best;
- anything else with buttons: the first that is not "Skip" / "This solved it";
- no button at all: if the last thing said is a question (a text-input question), a typed
  answer; otherwise the scenario is over.

The configuration (YAML) is read only to know answers that satisfy a pattern and which menu
choices lead to a `tenant_transfer`, so each step can be classified *before* it is sent
("transfer" or "guest"). Buttons carry `{"switchboard": {"verb", "session", "stage"...}}`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

try:
    import regex as _re  # what the bot validates with (\p{L} and the like)
except ImportError:  # pragma: no cover
    _re = re  # type: ignore[assignment]

CARD = "application/vnd.microsoft.card.adaptive"
NEED = "I need to change my parental leave dates"
TEXT_FALLBACKS = (NEED, "E12345", "12345", "Yes", "ACME Corp contract renewal")
SKIP_TITLES = {"skip", "cancel", "this solved it", "no thanks", "not now", "close"}
_WAIT_ACTIONS = {"question", "menu", "faq", "feedback", "connect_to_agent"}


# -- the configuration, as far as a guest needs it -------------------------------------


@dataclass
class ConfigView:
    """Stages by key (a key may exist in several pipelines: all are kept)."""

    stages: dict[str, list[tuple[dict[str, Any], dict[str, dict[str, Any]]]]] = field(
        default_factory=dict)
    tenant_names: set[str] = field(default_factory=set)

    @classmethod
    def load(cls, path: Path) -> ConfigView:
        view = cls()
        try:
            import yaml

            raw = yaml.safe_load(path.read_text())
        except Exception:  # the bench still runs, classifying by titles only
            return view
        for tenant in (raw or {}).get("tenants") or []:
            if not isinstance(tenant, dict):
                continue
            if tenant.get("name"):
                view.tenant_names.add(str(tenant["name"]).casefold())
            for pipeline in tenant.get("pipelines") or []:
                stages = {s.get("key"): s for s in pipeline.get("stages") or []
                          if isinstance(s, dict)}
                for key, stage in stages.items():
                    view.stages.setdefault(key, []).append((stage, stages))
        return view

    def question(self, key: str | None) -> dict[str, Any] | None:
        for stage, _ in self.stages.get(key or "", []):
            if stage.get("action") == "question":
                return stage
        return None

    def leads_to_transfer(self, key: str | None, choice: str | None) -> bool | None:
        """Whether pressing `choice` on menu `key` runs a tenant_transfer this turn (following
        stages that do not wait: message, condition, business hours...). None: unknown."""
        found = self.stages.get(key or "")
        if not found:
            return None
        for stage, pipeline in found:
            if stage.get("action") != "menu":
                continue
            for c in stage.get("choices") or []:
                if isinstance(c, dict) and str(c.get("id")) == str(choice):
                    return _reaches_transfer(c.get("next"), pipeline, depth=8)
        return None


def _next_keys(stage: dict[str, Any]) -> list[str]:
    keys = [stage.get(k) for k in ("next", "open", "closed", "otherwise", "on_timeout")]
    for branch in stage.get("branches") or []:
        if isinstance(branch, dict):
            keys.append(branch.get("next"))
    return [k for k in keys if isinstance(k, str)]


def _reaches_transfer(key: str | None, pipeline: dict[str, dict[str, Any]], depth: int) -> bool:
    stage = pipeline.get(key or "")
    if stage is None or depth == 0:
        return False
    if stage.get("action") == "tenant_transfer":
        return True
    if stage.get("action") in _WAIT_ACTIONS:
        return False
    return any(_reaches_transfer(k, pipeline, depth - 1) for k in _next_keys(stage))


# -- reading what the bot sent ---------------------------------------------------------


def cards(activity: dict[str, Any]) -> list[dict[str, Any]]:
    return [a["content"] for a in activity.get("attachments") or []
            if isinstance(a, dict) and a.get("contentType") == CARD
            and isinstance(a.get("content"), dict)]


def _walk(node: Any, kind: str):
    if isinstance(node, dict):
        if str(node.get("type", "")).startswith(kind):
            yield node
        for value in node.values():
            yield from _walk(value, kind)
    elif isinstance(node, list):
        for item in node:
            yield from _walk(item, kind)


def buttons(card: dict[str, Any]) -> list[dict[str, Any]]:
    return [a for a in _walk(card, "Action.") if a["type"] in ("Action.Submit", "Action.Execute")]


def inputs(card: dict[str, Any]) -> list[dict[str, Any]]:
    return [i for i in _walk(card, "Input.") if i.get("id")]


def _sb(action: dict[str, Any]) -> dict[str, Any]:
    data = action.get("data")
    sb = data.get("switchboard") if isinstance(data, dict) else None
    return sb if isinstance(sb, dict) else {}


def _texts(node: Any) -> list[str]:
    out = []
    for block in _walk(node, ""):
        if block.get("type") in ("TextBlock", "TextRun") and isinstance(block.get("text"), str):
            out.append(block["text"])
    return out


def all_text(activity: dict[str, Any]) -> str:
    parts = [activity.get("text") or ""]
    for card in cards(activity):
        parts.extend(_texts(card))
    return "\n".join(p for p in parts if p)


# -- the policy ------------------------------------------------------------------------


@dataclass
class Step:
    """What the guest sends next."""

    kind: str  # "start" (first message), "guest", "transfer"
    label: str  # for the printed path: 'press "HR"'
    text: str | None = None
    value: dict[str, Any] | None = None
    execute: dict[str, Any] | None = None  # an Action.Execute press (an invoke)
    session: str | None = None  # the session id on the card answered
    stage: str | None = None


@dataclass
class Guest:
    """One guest's reading of the chat: what was answered, to vary a refused answer."""

    config: ConfigView
    department: str = "HR"
    tried: dict[str, int] = field(default_factory=dict)
    anomalies: list[str] = field(default_factory=list)

    def first(self) -> Step:
        return Step("start", 'say "hi"', text="hi")

    def next(self, replies: list[dict[str, Any]]) -> Step | None:
        """The next step after these replies; None when the scenario is over."""
        for activity in replies:
            text = all_text(activity).casefold()
            if "something went wrong" in text or "from an earlier step" in text:
                self.anomalies.append(text[:120])
        card = None
        for activity in replies:
            for c in cards(activity):
                if buttons(c):
                    card = c
        if card is None:
            last = all_text(replies[-1]).strip() if replies else ""
            if last.endswith("?") and not (replies[-1].get("attachments")):
                return Step("guest", "type an answer", text=self._text(None, None, None))
            return None
        return self._press(card)

    def _press(self, card: dict[str, Any]) -> Step:
        actions = buttons(card)
        for action in actions:
            if "still need help" in str(action.get("title", "")).casefold():
                return self._step(action, {}, "guest")
        fields = inputs(card)
        if fields:
            sending = [a for a in actions if not _skips(a)] or actions
            action = sending[0]
            values = {f["id"]: self._value(f, _sb(action).get("stage")) for f in fields}
            values = {k: v for k, v in values.items() if v is not None}
            return self._step(action, values, "guest")
        choosers = [a for a in actions if _sb(a).get("verb") == "choose"]
        if choosers:
            wanted = self.department.casefold()
            action = next((a for a in choosers if str(a.get("title", "")).casefold() == wanted),
                          None)
            if action is None:
                action = next((a for a in choosers if self._transfers(a)), choosers[0])
            return self._step(action, {}, "transfer" if self._transfers(action) else "guest")
        ratings = [a for a in actions if _rating(a) is not None]
        if ratings:
            return self._step(max(ratings, key=_rating), {}, "guest")
        plain = [a for a in actions if not _skips(a)] or actions
        return self._step(plain[0], {}, "guest")

    def _transfers(self, action: dict[str, Any]) -> bool:
        sb = _sb(action)
        known = self.config.leads_to_transfer(sb.get("stage"), sb.get("choice"))
        if known is not None:
            return known
        return str(action.get("title", "")).casefold() in self.config.tenant_names

    def _step(self, action: dict[str, Any], values: dict[str, Any], kind: str) -> Step:
        sb = _sb(action)
        data = {**(action.get("data") or {}), **values}
        title = action.get("title", "?")
        shown = ", ".join(f"{k}={v!r}" for k, v in values.items())
        label = f'press "{title}"' + (f" with {shown}" if shown else "")
        step = Step(kind, label, session=sb.get("session"), stage=sb.get("stage"))
        if action["type"] == "Action.Execute":
            step.execute = {"type": "Action.Execute", "verb": action.get("verb"), "data": data}
        else:
            step.value = data
        return step

    def _value(self, field_: dict[str, Any], stage_key: str | None) -> Any:
        kind = field_["type"]
        if kind == "Input.ChoiceSet":
            choices = [c.get("value") for c in field_.get("choices") or [] if isinstance(c, dict)]
            if not choices:
                return None
            numeric = [c for c in choices if str(c).isdigit()]
            return max(numeric, key=int) if len(numeric) == len(choices) else choices[0]
        if kind == "Input.Text":
            if not field_.get("isRequired") and field_.get("id") != "answer":
                return None  # an optional comment: left empty, as most people do
            return self._text(stage_key, field_.get("placeholder"), field_.get("maxLength"))
        if kind == "Input.Number":
            return str(field_.get("min", 1))
        if kind == "Input.Toggle":
            return field_.get("valueOn", "true")
        if kind == "Input.Date":
            return "2030-01-15"
        if kind == "Input.Time":
            return "10:00"
        return None

    def _text(self, stage_key: str | None, placeholder: str | None,
              max_length: int | None) -> str:
        stage = self.config.question(stage_key) or {}
        pattern = stage.get("pattern")
        placeholder = placeholder or stage.get("placeholder")
        candidates = []
        if pattern:
            hint = str(stage.get("pattern_hint") or "")
            candidates += [placeholder or "", *re.findall(r"[\w.@-]+", hint)]
        candidates += list(TEXT_FALLBACKS)
        good = [c for c in candidates if c and (not pattern or _matches(pattern, c))]
        if max_length:
            good = [c[: int(max_length)] for c in good]
        if not good:
            return NEED
        # asked the same stage again: the last answer was refused, try the next candidate
        key = stage_key or "?"
        tries = self.tried.get(key, 0)
        self.tried[key] = tries + 1
        return good[min(tries, len(good) - 1)]


def _matches(pattern: str, text: str) -> bool:
    try:
        return _re.fullmatch(pattern, text) is not None
    except Exception:
        return False


def _skips(action: dict[str, Any]) -> bool:
    return (str(action.get("title", "")).strip().casefold() in SKIP_TITLES
            or action.get("associatedInputs") == "none")


def _rating(action: dict[str, Any]) -> int | None:
    title = str(action.get("title", "")).strip()
    if title.isdigit() and len(title) == 1:
        return int(title)
    stars = title.count("\u2605") or title.count("\u2b50")
    if stars and len(title.replace("\u2605", "").replace("\u2b50", "").strip()) == 0:
        return stars
    return None


def replies_from(raw: bytes) -> list[dict[str, Any]]:
    """What GET /drain answers: a JSON array of the activities the bot sent."""
    out = json.loads(raw) if raw else []
    return [a for a in out if isinstance(a, dict)]
