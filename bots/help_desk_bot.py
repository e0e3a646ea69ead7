"""The Teams activity handler: Teams activity -> the guest's live session -> the engine."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from typing import Any

from botbuilder.core import InvokeResponse, TurnContext
from botbuilder.core.teams import TeamsActivityHandler, TeamsInfo
from botbuilder.schema import Activity, ChannelAccount

from bots.agent_desk import AgentDesk
from bots.guest_input import (
    card_action_problem,
    guest_metadata,
    parse_execute,
    parse_message,
)
from bots.lean_turns import LeanTurns
from bots.replies import Replies, message_activity
from cards.builders import help_card
from pipelines.actions.base import GuestInput
from pipelines.engine import Engine, TurnResult
from storage.models import Phase, SessionState
from storage.sessions import SessionConflict, SessionStore

log = logging.getLogger("switchboard.turn")

COMMANDS = [
    ("help", "show what I can do and where you are"),
    ("restart", "close this request and start a new one"),
]


class _ConversationLocks:
    """One turn at a time per conversation in this process (Teams may send in parallel)."""

    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._users: dict[str, int] = defaultdict(int)

    def hold(self, key: str) -> _Held:
        return _Held(self, key)


class _Held:
    def __init__(self, owner: _ConversationLocks, key: str) -> None:
        self.owner, self.key = owner, key

    async def __aenter__(self) -> None:
        self.owner._users[self.key] += 1
        await self.owner._locks[self.key].acquire()

    async def __aexit__(self, *exc: object) -> None:
        self.owner._locks[self.key].release()
        self.owner._users[self.key] -= 1
        if self.owner._users[self.key] == 0:
            del self.owner._users[self.key]
            del self.owner._locks[self.key]


def _sender(context: TurnContext):
    outbound = getattr(context.adapter, "outbound", None)
    if isinstance(context.adapter, LeanTurns) and outbound is not None:
        return Replies(context, outbound).send

    async def send(text: str | None, card: dict[str, Any] | None) -> str | None:
        response = await context.send_activity(message_activity(text, card))
        return getattr(response, "id", None)

    return send


class HelpDeskBot(TeamsActivityHandler):
    def __init__(self, engine: Engine, store: SessionStore, desk: AgentDesk | None = None) -> None:
        self.engine = engine
        self.store = store
        self.desk = desk
        self.locks = _ConversationLocks()

    def _agent(self, context: TurnContext) -> str | None:
        return self.desk.agent_id(context.activity) if self.desk else None

    # -- Teams events ----------------------------------------------------------------

    async def on_message_activity(self, turn_context: TurnContext) -> None:
        if _refused_card_action(turn_context):
            await turn_context.send_activity(CARD_REFUSED)
            return
        guest = parse_message(turn_context)
        agent_id = self._agent(turn_context)
        if agent_id is not None:
            started = time.perf_counter()
            await self.desk.on_message(turn_context, guest, agent_id)
            _log_agent_turn(turn_context, agent_id, started, guest.verb or "message")
            return
        if guest.verb == "accept":
            await turn_context.send_activity(
                "Only the agents of a department can accept chats. Type **help** to see "
                "what you can do."
            )
            return
        await self._turn(turn_context, guest)

    async def on_invoke_activity(self, turn_context: TurnContext) -> InvokeResponse | None:
        if turn_context.activity.name != "adaptiveCard/action":
            # the only invoke we implement. botbuilder's handlers of the others answer 501
            # too, but read `value` first and fail on a malformed one (a 500)
            return InvokeResponse(status=501)
        guest = parse_execute(turn_context.activity)
        if guest is None:
            return InvokeResponse(status=400, body=_invoke_error("the action is not an Execute"))
        if _refused_card_action(turn_context):
            return InvokeResponse(status=200, body={
                "statusCode": 200, "type": "application/vnd.microsoft.activity.message",
                "value": CARD_REFUSED,
            })
        agent_id = self._agent(turn_context)
        if agent_id is not None:
            started = time.perf_counter()
            if not await self.desk.first_delivery(turn_context, guest):
                return InvokeResponse(status=200, body={
                    "statusCode": 200, "type": "application/vnd.microsoft.activity.message",
                    "value": "Already done.",
                })
            await self.desk.register(turn_context, agent_id)
            body = await self.desk.on_execute(guest, agent_id)
            _log_agent_turn(turn_context, agent_id, started, guest.verb or "execute")
            return InvokeResponse(status=200, body=body)
        if guest.verb == "accept":
            return InvokeResponse(status=200, body={
                "statusCode": 200, "type": "application/vnd.microsoft.activity.message",
                "value": "Only the agents of a department can accept chats.",
            })
        result = await self._turn(turn_context, guest)
        if result is not None and result.replace_card is not None:
            body = {
                "statusCode": 200,
                "type": "application/vnd.microsoft.card.adaptive",
                "value": result.replace_card,
            }
        else:
            stale = result is not None and "stale_card" in result.events
            body = {
                "statusCode": 200,
                "type": "application/vnd.microsoft.activity.message",
                "value": "That card is from an earlier step." if stale else "Got it.",
            }
        return InvokeResponse(status=200, body=body)

    async def on_teams_members_added(
        self, teams_members_added, team_info, turn_context: TurnContext
    ) -> None:
        bot_id = turn_context.activity.recipient.id if turn_context.activity.recipient else None
        if any(m.id == bot_id for m in teams_members_added or []):
            await self._welcome(turn_context)

    async def on_installation_update_add(self, turn_context: TurnContext) -> None:
        await self._welcome(turn_context)

    async def on_installation_update_remove(self, turn_context: TurnContext) -> None:
        agent_id = self._agent(turn_context)
        if agent_id is not None:
            await self.desk.left(agent_id)

    async def on_members_added_activity(
        self, members_added: list[ChannelAccount], turn_context: TurnContext
    ) -> None:
        # non-Teams channels (the Emulator): same welcome
        bot_id = turn_context.activity.recipient.id if turn_context.activity.recipient else None
        if any(m.id == bot_id for m in members_added or []):
            await self._welcome(turn_context)

    # -- turns -----------------------------------------------------------------------

    async def _welcome(self, context: TurnContext) -> None:
        """On install: start the guest's first session, unless one is already live."""
        conversation_id = _conversation_id(context)
        if conversation_id is None or not _is_personal(context.activity):
            return
        agent_id = self._agent(context)
        if agent_id is not None:
            await self.desk.welcome(context, agent_id)
            return
        async with self.locks.hold(conversation_id):
            if await self.store.live(conversation_id) is not None:
                return
            started = time.perf_counter()
            guest = guest_metadata(context.activity)
            if not guest.get("Guest.Name"):
                guest["Guest.Name"] = await _member_name(context)
            try:
                result = await self.engine.start(
                    conversation_id,
                    guest,
                    _reference(context),
                    _sender(context),
                )
            except SessionConflict:
                return  # another instance (or a redelivery) welcomed them first
            _log_turn(context, result, started, "install")

    async def _turn(self, context: TurnContext, guest: GuestInput) -> TurnResult | None:
        conversation_id = _conversation_id(context)
        if conversation_id is None:
            log.warning("activity without a conversation id ignored")
            return None
        if not _is_personal(context.activity):
            await context.send_activity(
                "I help one person at a time: open a one-to-one chat with me from the Apps "
                "bar, and tell me what you need there."
            )
            return None
        typed = (guest.text or "").strip().casefold() if guest.value is None else ""
        command = typed if typed in ("help", "restart") else ""
        started = time.perf_counter()
        async with self.locks.hold(conversation_id):
            for attempt in range(2):
                try:
                    result = await self._dispatch(context, conversation_id, guest, command)
                    break
                except SessionConflict:
                    # another instance wrote the session first: reload and do it again
                    self.store.forget(conversation_id)
                    if attempt == 1:
                        raise
            kind = f"command:{command}" if command else (guest.verb or "message")
            _log_turn(context, result, started, kind)
            return result

    def _where(self, session) -> str | None:
        if session is None:
            return None
        tenant = self.engine.config.tenant(session.tenant_id)
        return f"You're talking to {tenant.name}."

    async def _dispatch(
        self, context: TurnContext, conversation_id: str, guest: GuestInput, command: str
    ) -> TurnResult:
        send = _sender(context)
        session = await self.store.current(conversation_id)
        if session is not None and session.saw(guest.activity_id):
            return TurnResult(session, events=["duplicate"])
        if session is not None and not session.state.live:
            session = None  # closed: the guest's next message starts a new request
        if command == "help":
            card = help_card(COMMANDS, where=self._where(session))
            if session is None:
                await send(None, card)
                return TurnResult(None, sent=1, events=["help"])
            result = await self.engine.reply_outside_pipeline(session, guest, send, card=card)
            result.events.append("help")
            return result
        if command == "restart":
            if session is not None:
                before = session.model_copy(deep=True)
                await self.engine.reply_outside_pipeline(
                    session, guest, send, text="Starting over.", close_as=SessionState.RESTARTED
                )
                if before.phase != Phase.PIPELINE and self.engine.routing is not None:
                    await self.engine.routing.after_guest_left(before)
            else:
                await send("Starting over.", None)
            return await self.engine.start(
                conversation_id, guest_metadata(context.activity), _reference(context), send,
                first=guest,
            )
        if session is None:
            return await self.engine.start(
                conversation_id,
                guest_metadata(context.activity),
                _reference(context),
                send,
                first=guest,
            )
        name = getattr(context.activity.from_property, "name", None)
        return await self.engine.handle(session, guest, send, name=name)


async def _member_name(context: TurnContext) -> str | None:
    """Teams' install events carry no name: ask the connector for the member's."""
    sender = context.activity.from_property
    if sender is None or not sender.id:
        return None
    try:
        member = await TeamsInfo.get_member(context, sender.id)
    except Exception:  # the name is a nicety; never fail the welcome for it
        log.info("could not look up the guest's name", exc_info=True)
        return None
    return getattr(member, "name", None) or None


CARD_REFUSED = (
    "Sorry, that didn't work: that button's data isn't valid (it may be from an old or "
    "altered card). Please use the latest card, or type **help**."
)


def _refused_card_action(context: TurnContext) -> bool:
    """A card action whose Switchboard data was tampered with: logged, touches nothing."""
    problem = card_action_problem(context.activity)
    if problem is not None:
        log.warning("card action refused", extra={"reason": problem,
                                                  "conversation": _conversation_id(context)})
    return problem is not None


def _invoke_error(message: str) -> dict[str, Any]:
    return {
        "statusCode": 400,
        "type": "application/vnd.microsoft.error",
        "value": {"code": "BadRequest", "message": message},
    }


def _conversation_id(context: TurnContext) -> str | None:
    conversation = context.activity.conversation
    cid = getattr(conversation, "id", None)
    return cid if isinstance(cid, str) and cid else None


def _is_personal(activity: Activity) -> bool:
    conversation_type = getattr(activity.conversation, "conversation_type", None)
    return conversation_type in (None, "personal")


def _reference(context: TurnContext) -> dict[str, Any]:
    return TurnContext.get_conversation_reference(context.activity).serialize()


def _log_agent_turn(context: TurnContext, agent_id: str, started: float, kind: str) -> None:
    log.info(
        "agent turn",
        extra={
            "kind": kind,
            "activity_type": context.activity.type,
            "conversation": _conversation_id(context),
            "agent": agent_id,
            "ms": round((time.perf_counter() - started) * 1000, 1),
        },
    )


def _log_turn(context: TurnContext, result: TurnResult | None, started: float, kind: str) -> None:
    session = result.session if result else None
    log.info(
        "turn",
        extra={
            "kind": kind,
            "activity_type": context.activity.type,
            "conversation": _conversation_id(context),
            "session": session.id if session else None,
            "tenant": session.tenant_id if session else None,
            "stage": session.stage_key if session else None,
            "state": session.state.value if session else None,
            "sent": result.sent if result else 0,
            "events": result.events if result else [],
            "ms": round((time.perf_counter() - started) * 1000, 1),
        },
    )

