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

import telemetry
from bots.agent_desk import AgentDesk
from bots.guest_input import (
    card_action_problem,
    guest_metadata,
    parse_execute,
    parse_message,
)
from bots.replies import message_activity
from cards.builders import help_card
from pipelines.actions.base import GuestInput
from pipelines.engine import STALE_CARD, Engine, TurnResult
from pipelines.recovery import Recovery
from storage.dedupe import first_delivery
from storage.models import Phase, SessionState
from storage.sessions import SessionConflict, SessionStore, StartInProgress

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


# a turn redone this many times when other instances keep writing its session first
MAX_ATTEMPTS = 6


class HelpDeskBot(TeamsActivityHandler):
    def __init__(self, engine: Engine, store: SessionStore, recovery: Recovery,
                 desk: AgentDesk | None = None) -> None:
        self.engine = engine
        self.store = store
        self.recovery = recovery
        self.desk = desk
        self.locks = _ConversationLocks()

    def _agent(self, context: TurnContext) -> str | None:
        return self.desk.agent_id(context.activity) if self.desk else None

    # -- Teams events ----------------------------------------------------------------

    async def _reply_once(self, context: TurnContext, text: str) -> None:
        """A direct answer that changes nothing: sent once, whichever delivery comes first."""
        conversation_id = _conversation_id(context)
        if conversation_id is None or await first_delivery(
            self.store.docs, conversation_id, _activity_id(context)
        ):
            await context.send_activity(message_activity(text))

    async def on_message_activity(self, turn_context: TurnContext) -> None:
        if _refused_card_action(turn_context):
            await self._reply_once(turn_context, CARD_REFUSED)
            return
        guest = parse_message(turn_context)
        agent_id = self._agent(turn_context)
        if agent_id is not None:
            started = time.perf_counter()
            await self.desk.on_message(turn_context, guest, agent_id)
            _log_agent_turn(turn_context, agent_id, started, guest.verb or "message")
            return
        if guest.verb == "accept":
            await self._reply_once(
                turn_context,
                "Only the agents of a department can accept chats. Type **help** to see "
                "what you can do.",
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
            body = await self.desk.on_execute(turn_context, guest, agent_id)
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
        """On install: start the guest's first session, unless one is already live.

        Teams sends two events for one install (installationUpdate and conversationUpdate
        with the bot among membersAdded): whichever comes first starts the session, the
        other finds it live (or being started) and does nothing; an agent is greeted once.
        """
        conversation_id = _conversation_id(context)
        if conversation_id is None or not _is_personal(context.activity):
            return
        agent_id = self._agent(context)
        if agent_id is not None:
            await self.desk.welcome(context, agent_id)
            return
        async with self.locks.hold(conversation_id):
            started = time.perf_counter()
            for attempt in range(MAX_ATTEMPTS):
                try:
                    current = await self.store.current(conversation_id,
                                                       _activity_id(context))
                    if current is not None:
                        current = await self.recovery.settle(current)
                        if current.state.live:
                            return
                    guest = guest_metadata(context.activity)
                    if not guest.get("Guest.Name"):
                        guest["Guest.Name"] = await _member_name(context)
                    result = await self.engine.start(
                        conversation_id, guest, _reference(context),
                        activity_id=_activity_id(context),
                    )
                    break
                except StartInProgress:
                    await asyncio.sleep(0.05 * (attempt + 1))
                except SessionConflict:
                    self.store.forget(conversation_id)
            else:
                return  # another instance (or a redelivery) is welcoming them
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
            for attempt in range(MAX_ATTEMPTS):
                try:
                    result = await self._dispatch(context, conversation_id, guest, command)
                    break
                except StartInProgress:
                    # another instance is writing this conversation's new session right now
                    if attempt == MAX_ATTEMPTS - 1:
                        raise
                    await asyncio.sleep(0.05 * (attempt + 1))
                except SessionConflict:
                    # another instance wrote the session first: reload and do it again
                    self.store.forget(conversation_id)
                    if attempt == MAX_ATTEMPTS - 1:
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
        session = await self.store.current(conversation_id, guest.activity_id)
        if session is not None:
            # whatever a crash left (a half-done transfer, messages owed) goes first
            session = await self.recovery.settle(session)
        if session is not None and session.saw(guest.activity_id):
            if session.awaiting_start and not self.recovery.deliverer.in_flight(session):
                # a redelivery of the press that transferred: the crash came before the
                # receiving department's first prompt, which is what the guest waits for
                # (while another process is still sending the transfer card, the sweep
                # resumes it after)
                result = await self.engine.resume(session)
                result.events.append("duplicate")
                return result
            if not (command == "restart" and session.state == SessionState.RESTARTED):
                return TurnResult(session, events=["duplicate"])
            # a redelivered restart whose new session a crash kept from starting: start it
            return await self._start(context, conversation_id, guest)
        if session is not None and not session.state.live:
            if guest.session_id is not None:
                # a button of a card from a chat that has ended: it starts nothing
                result = await self.engine.reply_outside_pipeline(session, guest,
                                                                  text=STALE_CARD)
                result.events.append("stale_card")
                return result
            session = None  # closed: the guest's next message starts a new request
        if command == "help":
            card = help_card(COMMANDS, where=self._where(session))
            if session is None:
                # no chat to record it in: answered once, whichever delivery comes first
                if await first_delivery(self.store.docs, conversation_id, guest.activity_id):
                    await context.send_activity(message_activity(card=card))
                return TurnResult(None, sent=1, events=["help"])
            result = await self.engine.reply_outside_pipeline(session, guest, card=card)
            result.events.append("help")
            return result
        if command == "restart":
            if session is not None:
                routing = self.engine.routing
                leaving = session.phase != Phase.PIPELINE and routing is not None

                def prepare(turn) -> None:
                    if leaving:
                        routing.leave(turn, "The guest started over.")

                await self.engine.reply_outside_pipeline(
                    session, guest, text="Starting over.", close_as=SessionState.RESTARTED,
                    prepare=prepare,
                )
                return await self._start(context, conversation_id, guest)
            return await self._start(context, conversation_id, guest, first_text="Starting over.")
        if session is None:
            return await self._start(context, conversation_id, guest)
        name = getattr(context.activity.from_property, "name", None)
        return await self.engine.handle(session, guest, name=name)

    async def _start(self, context: TurnContext, conversation_id: str, guest: GuestInput, *,
                     first_text: str | None = None) -> TurnResult:
        """A new session for the guest, with this activity as its first line."""
        return await self.engine.start(
            conversation_id, guest_metadata(context.activity), _reference(context),
            first=guest, activity_id=guest.activity_id, first_text=first_text,
        )


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


def _activity_id(context: TurnContext) -> str | None:
    activity_id = context.activity.id
    return activity_id if isinstance(activity_id, str) and activity_id else None


def _log_agent_turn(context: TurnContext, agent_id: str, started: float, kind: str) -> None:
    telemetry.turn_done(f"agent:{kind}", agent=agent_id)
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
    telemetry.turn_done(kind, session, result)
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

