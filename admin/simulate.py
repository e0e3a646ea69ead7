"""`simulate`: dry-run a pipeline in the terminal. No Teams, no server.

The real `Engine` runs the chat against an in-memory store (or `--db FILE`), and every card
it sends is printed as text, its buttons and choices as numbered options. The guest's answers
come from the keyboard, or from a script file (one answer per line) for automation. Typing an
option's number presses that button: the submit value is built from the button's data (and
the choice picked), as Teams would send it. Transfers are followed into the next tenant, as
the bot does.

A live agent cannot answer here. At a `connect_to_agent` stage, play the other side with
/agent (an agent accepts), /escalate (the next tier joins), /end (the agent ends the chat),
/timeout (nobody accepted in time); the guest leaves the queue by typing `cancel`, as in
Teams. The search follows the stage's skills and tiers (admin/simulate_routing.py).

An `http_request` stage's call is shown as the bot would make it and not sent; `--live` sends it
(admin/simulate_calls.py).
"""

from __future__ import annotations

import re
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Annotated, Any

import typer

from admin.common import PROBLEMS, USAGE, err, fail, load_config_or_exit
from admin.simulate_routing import DryRunRouting
from pipelines.typed_number import whole_number

SIM_COMMANDS = [
    ("help", "what the bot's help shows (as in Teams)"),
    ("restart", "close this request and start a new one (as in Teams)"),
    ("/agent [NAME]", "at a connect_to_agent stage: an agent accepts the chat (the best "
                      "match of the tiers offered now, or NAME)"),
    ("/escalate", "the next escalation tier joins (its card is shown)"),
    ("/end", "the agent ends the chat: the pipeline goes on (`next`)"),
    ("/timeout", "nobody accepted in time: the pipeline goes to `on_timeout`"),
    ("/where", "show the session's tenant, pipeline and stage"),
    ("/quit", "stop the simulation"),
]


# -- reading cards ---------------------------------------------------------------------


@dataclass(frozen=True)
class Option:
    title: str
    # what Teams would put in the activity: the button's data, and the inputs
    value: dict[str, Any]
    execute: bool = False
    verb: str | None = None


@dataclass
class CardView:
    text: str
    options: list[Option]
    wants_text: bool
    links: list[str]


_ACTIONS = ("Action.Submit", "Action.Execute")


def _walk(node: Any, found: list[dict[str, Any]]) -> None:
    if isinstance(node, list):
        for item in node:
            _walk(item, found)
    elif isinstance(node, dict):
        found.append(node)
        for value in node.values():
            if isinstance(value, (list, dict)):
                _walk(value, found)


def _without_actions(node: Any) -> Any:
    if isinstance(node, list):
        return [_without_actions(n) for n in node
                if not (isinstance(n, dict) and (str(n.get("type", "")).startswith("Action.")
                                                 or n.get("type") == "ActionSet"))]
    if isinstance(node, dict):
        return {k: _without_actions(v) for k, v in node.items() if k != "actions"}
    return node


def read_card(card: dict[str, Any]) -> CardView:
    """The card's words, and what the guest can do with it."""
    from cards.text import card_text

    elements: list[dict[str, Any]] = []
    _walk(card, elements)
    buttons = [e for e in elements if e.get("type") in _ACTIONS]
    choice_sets = [e for e in elements if e.get("type") == "Input.ChoiceSet"]
    wants_text = any(e.get("type") == "Input.Text" for e in elements)
    links = [f"{e.get('title', 'link')}: {e.get('url')}" for e in elements
             if e.get("type") == "Action.OpenUrl"]
    options: list[Option] = []
    submit = buttons[0] if buttons else None
    for choice_set in choice_sets:
        data = dict(submit.get("data") or {}) if submit else {}
        for choice in choice_set.get("choices") or []:
            value = {**data, str(choice_set.get("id")): choice.get("value")}
            options.append(_option(str(choice.get("title", choice.get("value"))), value, submit))
    if not choice_sets and not wants_text:
        for button in buttons:
            options.append(_option(str(button.get("title", "")), dict(button.get("data") or {}),
                                   button))
    return CardView(card_text(_without_actions(card)), options, wants_text, links)


_LEADING_NUMBER = re.compile(r"^(\d+)\b")


def option_keys(options: list[Option]) -> list[str]:
    """What to type for each option: its position, or the number its title starts with.

    A rating card lists "5 - Excellent" first: typing 5 must mean 5, as in Teams (where the
    bot reads a typed 5 as the rating), not the fifth option. So when every title starts with
    its own number, that number is the key.
    """
    numbers = [m.group(1) if (m := _LEADING_NUMBER.match(o.title)) else None for o in options]
    if options and None not in numbers and len(set(numbers)) == len(numbers):
        return [str(int(n)) for n in numbers if n is not None]
    return [str(i) for i in range(1, len(options) + 1)]


def _option(title: str, value: dict[str, Any], button: dict[str, Any] | None) -> Option:
    execute = bool(button and button.get("type") == "Action.Execute")
    return Option(title, value, execute, button.get("verb") if button else None)


def guest_input(text: str | None, option: Option | None = None):
    """What the bot would read from the activity Teams sends (bots.guest_input)."""
    from botbuilder.schema import Activity

    from bots.guest_input import parse_execute, parse_message

    if option is None:
        return parse_message(SimpleNamespace(activity=Activity(type="message", text=text)))
    if option.execute:
        value = {"action": {"type": "Action.Execute", "verb": option.verb, "data": option.value}}
        return parse_execute(Activity(type="invoke", name="adaptiveCard/action", value=value))
    return parse_message(SimpleNamespace(activity=Activity(type="message", value=option.value)))


# -- the terminal ----------------------------------------------------------------------


class Terminal:
    """The guest's side of the chat, printed."""

    def __init__(self, write: Callable[[str], None]) -> None:
        self.write = write
        self.options: list[Option] = []
        self._turn_options: list[Option] | None = None
        self.count = 0

    def begin_turn(self) -> None:
        self._turn_options = None

    def end_turn(self) -> None:
        if self._turn_options is not None:
            self.options = self._turn_options

    def _say(self, who: str, text: str) -> None:
        lines = text.splitlines() or [""]
        head = f"{who}> "
        self.write(head + lines[0])
        for line in lines[1:]:
            self.write(" " * len(head) + line)

    async def send(self, text: str | None, card: dict[str, Any] | None) -> str | None:
        self.count += 1
        if text:
            self._say("bot", text)
        if card is not None:
            view = read_card(card)
            self._say("bot", view.text or "(a card without text)")
            pad = " " * len("bot> ")
            for link in view.links:
                self.write(f"{pad}(link) {link}")
            for key, option in zip(option_keys(view.options), view.options, strict=True):
                self.write(f"{pad}[{key}] {option.title}")
            if view.wants_text:
                self.write(f"{pad}(type your answer)")
            if view.options or view.wants_text:
                self._turn_options = view.options
        return f"simulated-activity-{self.count}"


class TerminalChannel:
    """Delivery's channel (pipelines/delivery.py), printing to the terminal."""

    def __init__(self, terminal: Terminal) -> None:
        self.terminal = terminal

    async def send(self, reference: dict[str, Any], text: str | None,
                   card: dict[str, Any] | None, reply_to: str | None,
                   budget: float | None) -> str | None:
        return await self.terminal.send(text, card)

    async def update(self, reference: dict[str, Any], activity_id: str,
                     card: dict[str, Any], budget: float | None) -> None:
        await self.terminal.send(None, card)


# -- the chat --------------------------------------------------------------------------


class Simulation:
    def __init__(self, config: Any, tenant_id: str, guest_name: str, db: str,
                 write: Callable[[str], None], live: bool = False) -> None:
        self.config = config
        self.live = live
        self.tenant_id = tenant_id
        self.guest_name = guest_name
        self.db = db
        self.write = write
        self.terminal = Terminal(write)
        self.conversation_id = f"simulated-{uuid.uuid4().hex[:12]}"
        self.session: Any = None
        self.visited: list[Any] = []

    def guest(self) -> dict[str, Any]:
        return {
            "Guest.Id": "simulated-guest",
            "Guest.Name": self.guest_name,
            "Guest.AadObjectId": "00000000-0000-0000-0000-000000000001",
            "Guest.AadTenantId": "00000000-0000-0000-0000-0000000000aa",
            "Guest.Locale": "en-US",
        }

    async def run(self, answers: Iterator[str], echo: bool) -> int:
        from admin.simulate_calls import ShownCalls
        from pipelines.delivery import Deliverer, Owner
        from pipelines.engine import Engine
        from pipelines.http_steps import HttpSteps
        from storage.embedded import EmbeddedStore
        from storage.sessions import SessionStore
        from storage.timers import TimerStore

        docs = EmbeddedStore(self.db)
        await docs.open()
        try:
            self.store = SessionStore(docs)
            deliverer = Deliverer(self.store, TerminalChannel(self.terminal),
                                  Owner("simulate", uuid.uuid4().hex[:8]))
            # timers only for http_request calls, run after each turn (`_turn`)
            self.timers = TimerStore(docs, owner="simulate")
            self.engine = Engine(self.config, self.store, deliverer=deliverer,
                                 timers=self.timers)
            self.routing = DryRunRouting(self.config, self.write)
            self.engine.routing = self.routing
            self.calls = HttpSteps(self.engine, ShownCalls(self.write, self.live))
            await self._start(None)
            for line in answers:
                if echo:
                    self.write(f"you> {line}")
                if line.strip() == "/quit":
                    break
                await self._answer(line)
            await self._summary()
        finally:
            if hasattr(self, "calls"):
                await self.calls.close()
            await docs.close()
        return 0

    async def _turn(self, call) -> None:
        self.terminal.begin_turn()
        before = self.session.tenant_id if self.session is not None else None
        result = await call()
        session = await self._calls(result.session)
        self.terminal.end_turn()
        if session is not None:
            self.session = session
            if not self.visited or self.visited[-1].id != self.session.id:
                self.visited.append(self.session)
            else:
                self.visited[-1] = self.session
        if self.session is not None and before is not None and self.session.tenant_id != before:
            tenant = self.config.tenant(self.session.tenant_id)
            self.write(f"(moved to {tenant.name}: its pipeline {self.session.pipeline_id} runs)")
        self._status()

    async def _calls(self, session: Any) -> Any:
        """Run the http_request calls the turn left due; the session as they left it."""
        from admin.simulate_calls import run_calls

        if session is None or not await run_calls(self.timers, self.calls):
            return session
        return await self.store.get(session.tenant_id, session.id) or session

    def _status(self) -> None:
        s = self.session
        if s is None:
            return
        tenant = self.config.tenant(s.tenant_id)
        if s.state.live:
            waiting = "waiting for your answer" if s.awaiting_input else "resting"
            self.write(f"({tenant.name} > {s.pipeline_id} > {s.stage_key}: {waiting})")
        else:
            self.write(f"(the chat with {tenant.name} closed: {s.state.value}. Type anything to "
                       f"start a new one, or /quit)")

    async def _start(self, first: Any) -> None:
        # "first" is recorded like the bot records the message that opened the chat
        self.visited = [] if first is None else self.visited
        await self._turn(lambda: self.engine.start(
            self.conversation_id, self.guest(), {"conversation": {"id": self.conversation_id}},
            tenant_id=self.tenant_id, first=first,
        ))

    async def _answer(self, line: str) -> None:
        text = line.strip()
        command = text.casefold()
        if command.startswith("/"):
            await self._sim_command(text)
            return
        option = None
        options = self.terminal.options
        keys = option_keys(options)
        number = whole_number(text, 0, 999_999)
        if number is not None and str(number) in keys:
            option = options[keys.index(str(number))]
            self.write(f"(pressed [{number}] {option.title})")
        guest = guest_input(text if option is None else None, option)
        live = self.session is not None and self.session.state.live
        if option is None and command == "help":
            self._help()
            return
        if option is None and command == "restart":
            if live:
                from storage.models import SessionState

                await self._turn(lambda: self.engine.reply_outside_pipeline(
                    self.session, guest, text="Starting over.",
                    close_as=SessionState.RESTARTED))
            await self._start(guest)
            return
        if not live:
            await self._start(guest)
            return
        await self._turn(lambda: self.engine.handle(self.session, guest))

    def _help(self) -> None:
        where = ""
        if self.session is not None and self.session.state.live:
            where = f"You're talking to {self.config.tenant(self.session.tenant_id).name}. "
        self.write(f"bot> {where}Type help to see this, restart to start over.")
        self.write("(simulator: " + "; ".join(f"{c}: {d}" for c, d in SIM_COMMANDS) + ")")

    def _agent_stage(self) -> Any:
        s = self.session
        if s is None or not s.state.live:
            return None
        stage = self.config.tenant(s.tenant_id).pipeline(s.pipeline_id).stage(s.stage_key)
        return stage if stage.action == "connect_to_agent" else None

    async def _sim_command(self, text: str) -> None:
        from pipelines.actions.base import Goto
        from storage.models import Phase

        command, _, rest = text.partition(" ")
        command = command.casefold()
        if command == "/where":
            self._status()
            return
        if command not in ("/agent", "/end", "/timeout", "/escalate"):
            self.write("(unknown command: " + ", ".join(c for c, _ in SIM_COMMANDS) + ")")
            return
        stage = self._agent_stage()
        if stage is None:
            self.write(f"({command} works while the guest waits for or talks to an agent, at a "
                       f"connect_to_agent stage)")
            return
        session = self.session
        if command == "/escalate":
            why = self.routing.cannot_escalate(session, stage)
            if why is not None:
                self.write(f"({why})")
                return
            await self._turn(lambda: self.engine.act(
                session.tenant_id, session.id, lambda turn: self.routing.escalate(turn, stage)))
            return
        if command == "/agent":
            if session.phase == Phase.CONNECTED:
                self.write("(an agent already has this chat)")
                return
            picked = self.routing.pick(session, stage, rest.strip())
            if isinstance(picked, str):
                self.write(f"(dry run: {picked})")
                return
            await self._turn(lambda: self.engine.act(
                session.tenant_id, session.id,
                lambda turn: self.routing.accept(turn, stage, picked)))
            return
        if command == "/end" and session.phase != Phase.CONNECTED:
            self.write("(no agent has this chat yet: /agent first)")
            return
        target = stage.next if command == "/end" else stage.on_timeout

        async def step(turn: Any) -> Any:
            turn.session.phase = Phase.PIPELINE
            turn.session.agent = None
            turn.session.routing = None
            return Goto(target)

        await self._turn(lambda: self.engine.act(session.tenant_id, session.id, step))

    async def _summary(self) -> None:
        if not self.visited:
            return
        parts = []
        for seen in self.visited:
            s = await self.store.get(seen.tenant_id, seen.id) or seen
            tenant = self.config.tenant(s.tenant_id)
            parts.append(f"{tenant.name} [{s.state.value}]")
        self.write("(end of simulation: " + " -> ".join(parts) + ")")


def _lines(stream) -> Iterator[str]:
    for raw in stream:
        line = raw.rstrip("\r\n")
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        yield line


def _keyboard() -> Iterator[str]:
    while True:
        try:
            yield input("you> ")
        except EOFError:
            return


def simulate(
    file: Annotated[Path, typer.Argument(help="The configuration file (YAML or JSON).")],
    tenant: Annotated[str | None, typer.Option(
        help="The tenant the chat starts in (default: the primary tenant).")] = None,
    script: Annotated[Path | None, typer.Option(
        help="Read the guest's answers from this file, one per line (blank lines and lines "
             "starting with # are skipped). A number presses that option.")] = None,
    guest_name: Annotated[str, typer.Option(help="The guest's name (Guest.Name).")] = "Guest",
    db: Annotated[str, typer.Option(
        help="Keep the simulated sessions in this SQLite file (default: in memory).")
    ] = ":memory:",
    live: Annotated[bool, typer.Option(
        "--live", help="Make the HTTP calls of http_request stages (default: show each call "
                       "the bot would make, and do not send it).")] = False,
) -> None:
    """Dry-run a pipeline in the terminal: the real engine, cards printed as text, buttons as
    numbered options; type a number to press one. Follows transfers into other tenants, and
    shows the HTTP call of an http_request stage without making it (--live makes it).
    Commands: help, restart, /agent, /escalate, /end, /timeout, /where, /quit."""
    from admin.common import run
    from pipelines.http_steps import environment_problems

    config = load_config_or_exit(file)
    problems, notes = environment_problems(config, file=str(file))
    if live and problems:
        raise fail("\n".join([*problems, "--live makes the calls as the bot would: set what is "
                                          "missing, or leave out --live"]))
    for line in [*notes, *problems]:
        err(f"warning: {line}")
    tenant_id = tenant or config.primary_tenant
    try:
        chosen = config.tenant(tenant_id)
    except KeyError:
        known = ", ".join(t.id for t in config.tenants)
        raise fail(f"unknown tenant {tenant_id!r}: the configuration has {known}", USAGE) from None
    if not chosen.enabled:
        err(f"warning: tenant {tenant_id!r} is disabled: the bot would not send chats there")

    def write(line: str) -> None:
        typer.echo(line)

    if script is not None:
        try:
            stream = script.open(encoding="utf-8")
        except OSError as exc:
            raise fail(f"cannot read the script {script}: {exc.strerror or exc}", USAGE) from None
        with stream:
            code = run(Simulation(config, tenant_id, guest_name, db, write, live)
                       .run(_lines(stream), echo=True))
    elif sys.stdin.isatty():
        write(f"Simulating {chosen.name} ({tenant_id}). Type help for the commands, /quit to "
              f"stop.")
        code = run(Simulation(config, tenant_id, guest_name, db, write, live)
                   .run(_keyboard(), echo=False))
    else:
        code = run(Simulation(config, tenant_id, guest_name, db, write, live)
                   .run(_lines(sys.stdin), echo=True))
    if code:
        raise typer.Exit(PROBLEMS)
