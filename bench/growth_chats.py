"""The template chats of the store-growth benchmark, played over HTTP against the running bot.

Each template is a chat a help desk sees every day, played through /api/messages as Teams
posts it, by a guest and, where the chat needs one, an agent; the bench's lean connector
plays the Bot Connector and keeps what the bot sent, so the players read the cards they
answer. The store then holds exactly the documents the running bot writes for such a chat;
bench/growth_fill.py copies them, with new ids, to fill the store.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from growth_fill import Templates, snapshot
from load import (
    AAD_TENANT,
    BOT,
    Conversation,
    Rig,
    embedded,
    switchboard_spec,
    wait_healthy,
)
from policy import ConfigView, Guest, Step, all_text, buttons, cards, inputs
from proc import free_port

# the example config's HR agent (examples/helpdesk.yaml): she takes the agent chats
HELEN = ("Helen Brooks", "00000000-0000-0000-0000-000000000104")
NEED = "I need to change my parental leave dates"
WAIT_SECONDS = 15.0  # for a card sent after the turn (an offer round runs on a timer)

# every template, and how many of each in 100 chats of the fill (bench/growth_fill.py)
MIX = {
    "hr_resolved": 40,  # the seed scenario: Service Desk -> HR, answered, rated
    "it_resolved": 15,
    "legal_resolved": 8,
    "faq_deflected": 12,  # an article solved it: the chat closes as `deflected`
    "abandoned_at_start": 8,  # said hi and never answered: open at the first question
    "abandoned_in_hr": 4,  # transferred to HR, then silence: open in HR
    "agent_chat": 8,  # HR -> waits -> the agent accepts, they talk, the agent ends it
    "agent_transfer": 2,  # the agent hands the chat to IT, which finishes it
    "wait_cancelled": 3,  # nobody free; the guest stops waiting
}


class Agent:
    """An agent's personal chat with the bot, as Teams posts it."""

    def __init__(self, name: str, aad: str, service_url: str) -> None:
        self.name, self.aad, self.service_url = name, aad, service_url
        self.conversation = f"a:1agent-{aad}"

    def _activity(self, type_: str) -> dict[str, Any]:
        return {
            "type": type_,
            "id": f"agent-{uuid.uuid4().hex}",
            "timestamp": datetime.now(UTC).isoformat(),
            "channelId": "msteams",
            "serviceUrl": self.service_url,
            "from": {"id": f"29:{self.aad}", "name": self.name, "aadObjectId": self.aad},
            "recipient": dict(BOT),
            "conversation": {"id": self.conversation, "conversationType": "personal",
                             "tenantId": AAD_TENANT},
            "channelData": {"tenant": {"id": AAD_TENANT}},
            "locale": "en-US",
        }

    def install(self) -> dict[str, Any]:
        activity = self._activity("conversationUpdate")
        activity["membersAdded"] = [{"id": BOT["id"]}]
        activity["channelData"]["eventType"] = "teamMemberAdded"
        return activity

    def say(self, text: str) -> dict[str, Any]:
        activity = self._activity("message")
        activity.update(text=text, textFormat="plain")
        return activity

    def execute(self, action: dict[str, Any]) -> dict[str, Any]:
        activity = self._activity("invoke")
        activity["name"] = "adaptiveCard/action"
        activity["value"] = {"action": {"type": "Action.Execute", "verb": action.get("verb"),
                                        "data": action.get("data") or {}},
                             "trigger": "manual"}
        return activity


@dataclass
class Played:
    kind: str
    turns: int
    seconds: float


class TemplateChats:
    """Plays the templates, one at a time, against a Switchboard at `url`."""

    def __init__(self, rig: Rig, url: str, config: ConfigView) -> None:
        self.rig = rig
        self.url = url + "/api/messages"
        self.config = config
        self.agent = Agent(*HELEN, rig.service_url)
        self.turns = 0

    # -- HTTP ------------------------------------------------------------------------

    async def _post(self, body: bytes) -> None:
        assert self.rig.http is not None
        async with self.rig.http.post(self.url, data=body,
                                      headers={"Content-Type": "application/json"}) as resp:
            await resp.read()
            if resp.status not in (200, 201):
                raise RuntimeError(f"the bot answered HTTP {resp.status} to a template turn")
        self.turns += 1

    async def _drain(self, conversation: str) -> list[dict[str, Any]]:
        assert self.rig.control is not None
        url = f"{self.rig.control_url}/drain/{quote(conversation, safe='')}"
        async with self.rig.control.get(url) as r:
            return [a for a in json.loads(await r.read() or b"[]") if isinstance(a, dict)]

    async def guest_turn(self, conv: Conversation, step: Step) -> list[dict[str, Any]]:
        await self._post(conv.body(step))
        return await self._drain(conv.id)

    async def agent_turn(self, activity: dict[str, Any]) -> list[dict[str, Any]]:
        await self._post(json.dumps(activity).encode())
        return await self._drain(self.agent.conversation)

    async def _until(self, conversation: str, words: str) -> list[dict[str, Any]]:
        """What the bot sends to a conversation until a message with `words` comes (sent
        after the turn: an offer round runs on a timer)."""
        seen: list[dict[str, Any]] = []
        deadline = time.monotonic() + WAIT_SECONDS
        while time.monotonic() < deadline:
            seen += await self._drain(conversation)
            if any(words.casefold() in all_text(a).casefold() for a in seen):
                return seen
            await asyncio.sleep(0.05)
        raise RuntimeError(f"no message with {words!r} reached {conversation} within "
                           f"{WAIT_SECONDS:g}s: got {[all_text(a)[:80] for a in seen]}")

    # -- the guest's moves -------------------------------------------------------------

    def _guest(self, department: str = "HR") -> tuple[Conversation, Guest]:
        return Conversation(self.rig.service_url, "Template Guest"), Guest(
            self.config, department=department)

    async def _script(self, conv: Conversation, guest: Guest,
                      moves: list[tuple[str, str | None]]) -> list[dict[str, Any]]:
        """hi, then each move on the latest card: ("press", title), ("answer", text),
        ("say", text), or ("auto", None) for what the benchmark's guest policy does."""
        replies = await self.guest_turn(conv, guest.first())
        for move, arg in moves:
            if move == "say":
                step = Step("guest", f'say "{arg}"', text=arg)
            elif move == "auto":
                step = guest.next(replies)
                if step is None:
                    raise RuntimeError(f"the chat ended before the move {move}: {replies}")
            else:
                step = _on_card(guest, _latest_card(replies), move, arg)
            replies = await self.guest_turn(conv, step)
        return replies

    async def _finish(self, conv: Conversation, guest: Guest,
                      replies: list[dict[str, Any]]) -> None:
        """The guest policy to the end of the chat (at most 25 turns)."""
        for _ in range(25):
            step = guest.next(replies)
            if step is None:
                return
            replies = await self.guest_turn(conv, step)
        raise RuntimeError("a template chat did not end within 25 turns")

    # -- the templates -----------------------------------------------------------------

    async def install_agent(self) -> None:
        replies = await self.agent_turn(self.agent.install())
        if "You're an agent of" not in " ".join(all_text(a) for a in replies):
            raise RuntimeError(f"the agent was not greeted on install: {replies}")

    async def play(self, kind: str) -> Played:
        started, before = time.perf_counter(), self.turns
        await getattr(self, kind)()
        return Played(kind, self.turns - before, time.perf_counter() - started)

    async def _resolved(self, department: str) -> None:
        conv, guest = self._guest(department)
        await self._finish(conv, guest, await self.guest_turn(conv, guest.first()))

    async def hr_resolved(self) -> None:
        await self._resolved("HR")

    async def it_resolved(self) -> None:
        await self._resolved("IT")

    async def legal_resolved(self) -> None:
        await self._resolved("Legal")

    async def faq_deflected(self) -> None:
        conv, guest = self._guest()
        replies = await self._script(conv, guest, [("answer", "How do I reset my password?"),
                                                   ("press", "This solved it")])
        await self._finish(conv, guest, replies)

    async def abandoned_at_start(self) -> None:
        conv, guest = self._guest()
        await self._script(conv, guest, [])

    async def abandoned_in_hr(self) -> None:
        conv, guest = self._guest()
        await self._script(conv, guest, [("answer", NEED), ("press", "I still need help"),
                                         ("press", "HR")])

    async def _to_agent(self) -> tuple[Conversation, Guest]:
        conv, guest = self._guest()
        await self._script(conv, guest, [
            ("answer", NEED), ("press", "I still need help"), ("press", "HR"),
            ("answer", "E12345"), ("answer", "Something else")])
        return conv, guest

    async def _accepted(self) -> Conversation:
        conv, _ = await self._to_agent()
        offer = await self._until(self.agent.conversation, "New chat waiting")
        accept = next(b for a in offer for c in cards(a) for b in buttons(c)
                      if b.get("title") == "Accept")
        await self.agent_turn(self.agent.execute(accept))
        await self._until(conv.id, "Helen")
        await self.guest_turn(conv, Step("guest", "say", text="Hello, are you there?"))
        await self._until(self.agent.conversation, "are you there")
        await self.agent_turn(self.agent.say("Yes, I can change the dates for you."))
        await self._until(conv.id, "change the dates")
        await self.guest_turn(conv, Step("guest", "say", text="Thank you, from the 3rd."))
        await self._until(self.agent.conversation, "from the 3rd")
        return conv

    async def agent_chat(self) -> None:
        conv = await self._accepted()
        await self.agent_turn(self.agent.say("Done: your leave starts on the 3rd."))
        await self.agent_turn(self.agent.say("end"))
        guest = Guest(self.config)
        await self._finish(conv, guest, await self._until(conv.id, "rate"))

    async def agent_transfer(self) -> None:
        conv = await self._accepted()
        await self.agent_turn(self.agent.say("transfer IT"))
        guest = Guest(self.config, department="IT")
        await self._finish(conv, guest, await self._until(conv.id, "Which device"))

    async def wait_cancelled(self) -> None:
        await self.agent_turn(self.agent.say("status away"))
        try:
            conv, guest = await self._to_agent()
            replies = await self.guest_turn(conv, Step("guest", "say", text="cancel"))
            await self._finish(conv, guest, replies)
        finally:
            await self.agent_turn(self.agent.say("status available"))


async def capture_templates(rig: Rig, workdir: Path, config: Path, view: ConfigView,
                            say) -> Templates:
    """Play every template once against the real bot on a new embedded store, and capture
    the documents each chat left (bench/growth_fill.py)."""
    db = workdir / "template.sqlite3"
    port = free_port()
    spec = switchboard_spec(port, config, False, embedded(db))
    proc = rig.start_server(spec, port)
    try:
        await wait_healthy(rig, port, spec, proc)
        await rig.reset_connector(keep=True)
        chats = TemplateChats(rig, f"http://127.0.0.1:{port}", view)
        await chats.install_agent()
        await asyncio.sleep(0.5)
        shared = snapshot(db)
        played = []
        for kind in MIX:
            before = snapshot(db)
            p = await chats.play(kind)
            await asyncio.sleep(0.3)
            played.append((kind, before, snapshot(db)))
            say(f"[template] {kind}: {p.turns} turns in {p.seconds:.1f}s, "
                f"{len(played[-1][2]) - len(before)} documents")
        await asyncio.sleep(1.0)  # the last deliveries' marks
        final = snapshot(db)
    finally:
        rig.children.stop(proc)
    return Templates.capture(shared, played, final, AAD_TENANT)


def _latest_card(replies: list[dict[str, Any]]) -> dict[str, Any]:
    found = [c for a in replies for c in cards(a) if buttons(c)]
    if not found:
        raise RuntimeError(f"no card with a button to answer: {[all_text(a) for a in replies]}")
    return found[-1]


def _on_card(guest: Guest, card: dict[str, Any], move: str, arg: str | None) -> Step:
    actions = buttons(card)
    if move == "press":
        action = next((a for a in actions if a.get("title") == arg), None)
        if action is None:
            raise RuntimeError(f"no button {arg!r} in {[a.get('title') for a in actions]}")
        return guest._step(action, {}, "guest")
    fields = inputs(card)
    if move != "answer" or not fields:
        raise RuntimeError(f"cannot {move} {arg!r} on a card with inputs {fields}")
    action = next(a for a in actions if a.get("associatedInputs") != "none")
    return guest._step(action, {fields[0]["id"]: arg}, "guest")
