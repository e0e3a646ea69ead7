"""The agent's side of the bot: an agent's personal chat is their desk.

Anyone listed as an agent of an enabled tenant (by AAD object id) is an agent here. Their
typed text is a command (`help`, `end`, `transfer <department>`, `consult <department or
agent>`, `transfer`, `end consult`, `waiting`, `status ...`, `chats`, `switch <n>`) or a
reply relayed to the guest they are chatting with (to the other agent, in a consult); their
Accept button takes a chat, or joins a consult. Every refusal is a polite sentence, never an
error.

What an activity changes is recorded as handled in the same write as the change (the
session's, or the agent's own record): a redelivery finds it done and changes nothing twice,
and a failure before that write leaves it to be redone. The messages a change causes (to
the guest, to other agents, the agent's own "your chat has ended") are recorded with it and
delivered from the store. What is left is answered directly in the agent's turn (help, the
waiting list, a refusal): claimed first, so a redelivery is never answered twice.
"""

from __future__ import annotations

import logging
from typing import Any

from botbuilder.core import TurnContext
from botbuilder.schema import Activity

from bots.replies import message_activity
from cards.agent_cards import closed_offer_card
from cards.builders import help_card
from pipelines.actions.base import GuestInput
from pipelines.routing import Refused, Routing, activity_key
from pipelines.typed_number import whole_number
from storage.agents import Presence
from storage.dedupe import first_delivery

log = logging.getLogger("switchboard.agents")

AGENT_COMMANDS = [
    ("end", "end your current chat; the guest goes on with the next step"),
    ("transfer <department>", "hand your current chat to another department"),
    ("consult <department or agent>", "ask another agent privately; the guest sees nothing"),
    ("transfer", "while consulting: hand the guest to the agent you consulted"),
    ("end consult", "end the consult and carry on alone"),
    ("waiting", "list the chats waiting in your departments"),
    ("status available|away|offline", "set your presence"),
    ("chats", "list your open chats"),
    ("switch <number>", "send your messages to another of your chats"),
    ("help", "show this list"),
]


def _text(text: str) -> Activity:
    return message_activity(text)


class AgentDesk:
    def __init__(self, routing: Routing) -> None:
        self.routing = routing

    def agent_id(self, activity: Activity) -> str | None:
        aad = getattr(activity.from_property, "aad_object_id", None)
        if isinstance(aad, str) and self.routing.config.tenants_of_agent(aad):
            return aad.casefold()
        return None

    async def register(self, context: TurnContext, agent_id: str, *,
                       greet: bool = False) -> bool:
        reference = TurnContext.get_conversation_reference(context.activity).serialize()
        name = getattr(context.activity.from_property, "name", None)
        conversation = getattr(context.activity.conversation, "id", None) if greet else None
        return await self.routing.presence.register(agent_id, name, reference,
                                                    greet_in=conversation)

    async def welcome(self, context: TurnContext, agent_id: str) -> None:
        """On install: remember how to reach them; greet them once per install."""
        if not await self.register(context, agent_id, greet=True):
            return
        tenants = ", ".join(t.name for t in self.routing.config.tenants_of_agent(agent_id))
        await context.send_activity(_text(
            f"Hi! You're an agent of {tenants}. New chats will be offered to you here. "
            "Type **help** for your commands."
        ))

    async def _answer(self, context: TurnContext, guest: GuestInput,
                      reply: Activity | None) -> None:
        """A direct answer: claimed first, so a redelivery does not get it twice."""
        if reply is None:
            return
        conversation = getattr(context.activity.conversation, "id", None)
        if not conversation or await first_delivery(
            self.routing.desk.sessions.docs, conversation, guest.activity_id
        ):
            await context.send_activity(reply)

    async def on_message(self, context: TurnContext, guest: GuestInput, agent_id: str) -> None:
        await self.register(context, agent_id)
        key = activity_key(getattr(context.activity.conversation, "id", None),
                           guest.activity_id)
        if guest.verb in ("accept", "consult"):
            card = await self._accept(guest, agent_id, key=key, in_place=False)
            if card is None:
                return  # accepted: the offer card's update is recorded with the accept
            reply_to = context.activity.reply_to_id
            if reply_to:  # refused: replace the pressed offer card in place (idempotent)
                activity = message_activity(card=card)
                activity.id = reply_to
                try:
                    await context.update_activity(activity)
                    return
                except Exception:
                    log.warning("could not update the offer card; sending a new message")
            await self._answer(context, guest, message_activity(card=card))
            return
        reply = await self.command(agent_id, guest.text or "", key=key)
        await self._answer(context, guest, reply)

    async def on_execute(self, context: TurnContext, guest: GuestInput,
                         agent_id: str) -> dict[str, Any]:
        """An Action.Execute from an agent: the card that replaces the pressed one."""
        await self.register(context, agent_id)
        if guest.verb in ("accept", "consult"):
            key = activity_key(getattr(context.activity.conversation, "id", None),
                               guest.activity_id)
            card = await self._accept(guest, agent_id, key=key, in_place=True)
            return {"statusCode": 200, "type": "application/vnd.microsoft.card.adaptive",
                    "value": card}
        return {"statusCode": 200, "type": "application/vnd.microsoft.activity.message",
                "value": "That button doesn't do anything any more."}

    async def _accept(self, guest: GuestInput, agent_id: str, *, key: str | None,
                      in_place: bool) -> dict[str, Any] | None:
        """The accepted card (or a polite refusal card). For an Action.Submit the offer card
        is updated by a message recorded with the accept: None then, unless refused."""
        data = (guest.value or {}).get("switchboard") or {}
        tenant_id, session_id = data.get("tenant"), guest.session_id
        if not isinstance(tenant_id, str) or not session_id:
            return closed_offer_card("a guest", "this department", "This offer is not valid.")
        try:
            if guest.verb == "consult":
                card = await self.routing.consults.accept(agent_id, tenant_id, session_id,
                                                          key=key, in_place=in_place)
            else:
                card = await self.routing.accepting.accept(agent_id, tenant_id, session_id,
                                                           key=key, in_place=in_place)
        except Refused as refused:
            tenant = next((t for t in self.routing.config.tenants if t.id == tenant_id), None)
            return closed_offer_card("this guest", tenant.name if tenant else tenant_id,
                                     str(refused))
        return card if in_place else None

    async def command(self, agent_id: str, text: str, *, key: str | None = None
                      ) -> Activity | None:
        words = text.strip().split()
        verb = words[0].casefold() if words else ""
        rest = text.strip()[len(words[0]):].strip() if words else ""
        routing = self.routing
        try:
            if verb == "help" and not rest:
                return message_activity(card=help_card(AGENT_COMMANDS, where=None))
            if verb == "end" and not rest:
                await routing.chat.end_chat(agent_id, key=key)
                return None  # "your chat has ended" is recorded with the end, delivered
            if verb == "end" and rest.casefold() == "consult":
                await routing.chat.end_consult(agent_id, key=key)
                return None
            if verb == "consult":
                if not rest:
                    return _text("Use **consult <department or agent>**, like **consult HR** "
                                 "or **consult Bob**.")
                await routing.chat.consult(agent_id, rest, key=key)
                return None  # what it says is recorded with it, delivered
            if verb == "transfer":  # alone: to the agent consulted (a warm transfer)
                await routing.chat.transfer_chat(agent_id, rest, key=key)
                return None
            if verb == "waiting" and not rest:
                lines = await routing.presence.waiting_list(agent_id)
                if not lines:
                    return _text("Nobody is waiting in your departments.")
                return _text("Waiting now:\n\n" + "\n\n".join(f"- {line}" for line in lines))
            if verb == "status":
                answer = await self._status(agent_id, rest, key)
                return _text(answer) if answer else None
            if verb == "chats" and not rest:
                return _text(await self._chats(agent_id))
            if verb == "switch":
                return _text(await self._switch(agent_id, rest))
            if not text.strip():
                return _text("Type **help** to see your commands.")
            await routing.chat.relay_from_agent(agent_id, text.strip(), key=key)
            return None
        except Refused as refused:
            return _text(str(refused))

    async def _status(self, agent_id: str, value: str, key: str | None) -> str | None:
        try:
            presence = Presence(value.strip().casefold())
        except ValueError:
            return "Use **status available**, **status away** or **status offline**."
        return await self.routing.presence.set_presence(agent_id, presence, key=key)

    async def _chats(self, agent_id: str) -> str:
        chats = await self.routing.chat.my_chats(agent_id)
        if not chats:
            return "You have no open chats."
        focus = await self.routing.chat.focused_chat(agent_id)
        lines = []
        for number, session in enumerate(chats, start=1):
            mark = " (your messages go here)" if session.id == focus.id else ""
            guest = session.metadata.get("Guest.Name") or "A guest"
            tenant = self.routing.config.tenant(session.tenant_id).name
            lines.append(f"{number}. {guest} ({tenant}){mark}")
        return "\n\n".join(lines)

    async def _switch(self, agent_id: str, value: str) -> str:
        chats = await self.routing.chat.my_chats(agent_id)
        number = whole_number(value, 1, len(chats))
        if number is None:
            return f"Use **switch <number>** with a number from **chats** (1 to {len(chats)})."
        session = chats[number - 1]
        await self.routing.chat.switch(agent_id, session)
        return f"Your messages now go to {session.metadata.get('Guest.Name') or 'the guest'}."

    async def left(self, agent_id: str) -> None:
        """The agent removed the app: they can't be reached, their chats go back to routing."""
        await self.routing.presence.left(agent_id)
