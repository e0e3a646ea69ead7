"""Hostile input on /api/messages, fuzzed with hypothesis, against one running app per test.

Each test starts the real app (embedded store, local connector) once, on its own event loop
in a thread, and posts every generated case to it over HTTP. Every case must get a 4xx, or
a 2xx (handled or ignored); never a 5xx, except botbuilder's 501 for an invoke it does not
implement; and nothing may be logged at ERROR (a turn that fails is logged and answered
201, so the status alone would hide it). Afterwards the app still serves a guest from
"hi" to the next stage and /healthz is 200, and every card it sent is a valid Adaptive Card.

No generated activity can make the bot post beyond this machine: every `serviceUrl` that is
an http(s) URL is replaced by the local connector's before the case is sent, and DNS
lookups of anything but loopback fail for the duration of the test.

Beyond the activity itself: charsets and content encodings (and bodies compressed or not),
nulls and id-less members in the lists botbuilder dispatches on, numbers of thousands of
digits and texts that make regexes backtrack, and many distinct serviceUrls (after which
the cached connector clients must not hold more files open than the cache's size).

`SWITCHBOARD_FUZZ_RANDOM=1` explores new cases on every run; by default the cases are
derandomized (the same on every run), so the suite is deterministic. About 15,800 cases in
all; see `EXAMPLES`.
"""

from __future__ import annotations

import asyncio
import gc
import gzip
import itertools
import json
import logging
import os
import socket
import threading
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from botbuilder.schema import Activity
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from app import MAX_BODY_BYTES, SESSIONS
from bots.lean_turns import MAX_CLIENTS
from tests import teams
from tests.agent_desk import AGENTS, ALICE, BOB, CAROL, DAVE, person
from tests.connector import Connector
from tests.harness import BotServer, settings_for, texts

EXAMPLE_CONFIG = Path(__file__).resolve().parents[1] / "examples" / "helpdesk.yaml"

EXAMPLES = {
    "raw_bytes": 2000,
    "json_values": 2000,
    "activity_fields": 4000,
    "teams_guests": 3000,
    "teams_agents": 3000,
    "worst_typed_text": 300,
    "charsets_and_encodings": 700,
    "lists_botbuilder_dispatches": 500,
    "distinct_service_urls": 300,
}
RANDOM = os.environ.get("SWITCHBOARD_FUZZ_RANDOM") == "1"


def fuzz_settings(examples: int):
    return settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=not RANDOM,
        suppress_health_check=list(HealthCheck),
    )


# -- the app, on its own loop ---------------------------------------------------------


class ErrorLog(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def take(self) -> list[str]:
        out = []
        for record in self.records:
            error = f" {record.exc_info[1]!r}" if record.exc_info else ""
            out.append(f"{record.name}: {record.getMessage()}{error}")
        self.records.clear()
        return out


@dataclass
class AnyPathConnector(Connector):
    """The local connector, also answering 200 on any other path: an activity id or a
    conversation id with a "/" in it makes the bot post to a path the usual routes do not
    match, and a refused post is the connector's answer, not the bot's failure."""

    other: list[tuple[str, str]] = field(default_factory=list)

    def app(self) -> web.Application:
        app = super().app()
        app.router.add_route("*", "/{tail:.*}", self._other)
        return app

    async def _other(self, request: web.Request) -> web.Response:
        await request.read()
        self.other.append((request.method, request.path))
        return web.json_response({"id": f"other-{len(self.other)}"})


class LiveBot:
    """The app and the local connector on an event loop of their own (a thread)."""

    def __init__(self, tmp_path: Path, config: Path) -> None:
        self.tmp_path, self.config = tmp_path, config
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.posted = 0
        self.statuses: dict[int, int] = {}

    def run(self, coro, timeout: float = 120) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def start(self) -> LiveBot:
        self.thread.start()
        self.run(self._start())
        return self

    async def _start(self) -> None:
        self.connector = AnyPathConnector()
        self._connector_runner = web.AppRunner(self.connector.app(), access_log=None)
        await self._connector_runner.setup()
        site = web.TCPSite(self._connector_runner, "127.0.0.1", 0)
        await site.start()
        self.connector.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"
        settings = settings_for(
            self.tmp_path, config_path=str(self.config),
            # many conversations at full speed: the rate limits would only slow the fuzz
            sends_per_conversation=1e6, sends_per_app=1e6, send_retry_seconds=1.0,
        )
        self.server = await BotServer(settings).start()

    def stop(self) -> None:
        async def stop() -> None:
            await self.server.stop()
            await self._connector_runner.cleanup()

        try:
            self.run(stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
            self.loop.close()

    def post(self, body: bytes, content_type: str = "application/json",
             headers: dict[str, str] | None = None, chunked: bool = False) -> tuple[int, str]:
        async def pieces():
            for start in range(0, len(body), 1000):
                yield body[start:start + 1000]

        async def post() -> tuple[int, str]:
            async with self.server.http.post(
                f"{self.server.url}/api/messages", data=pieces() if chunked else body,
                headers={"Content-Type": content_type, **(headers or {})},
            ) as resp:
                return resp.status, await resp.text()

        status, text = self.run(post())
        self.posted += 1
        self.statuses[status] = self.statuses.get(status, 0) + 1
        return status, text

    def post_json(self, activity: Any) -> tuple[int, str]:
        return self.post(dumps(safe_service_url(activity, self.connector.url)))

    def healthz(self) -> int:
        async def get() -> int:
            async with self.server.http.get(f"{self.server.url}/healthz") as resp:
                return resp.status

        return self.run(get())


def safe_service_url(body: Any, connector_url: str) -> Any:
    """Any http(s) serviceUrl becomes the local connector's: the bot posts nowhere else."""
    if isinstance(body, dict):
        url = body.get("serviceUrl")
        if isinstance(url, str) and url.strip().lower().startswith(("http:", "https:")):
            body["serviceUrl"] = connector_url
        elif isinstance(url, str) and "//" in url:
            body["serviceUrl"] = "not a url"
    return body


@pytest.fixture
def loopback_only(monkeypatch):
    real = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):
        if host not in ("127.0.0.1", "localhost", "::1", b"127.0.0.1", b"localhost"):
            raise OSError(f"the fuzz tried to reach {host!r} off this machine")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


@pytest.fixture
def errors():
    handler = ErrorLog()
    logging.getLogger().addHandler(handler)
    yield handler
    logging.getLogger().removeHandler(handler)


def _live(tmp_path, config):
    bot = LiveBot(tmp_path, config).start()
    started = time.perf_counter()
    yield bot
    try:
        elapsed = time.perf_counter() - started
        print(f"\n{bot.posted} requests in {elapsed:.1f}s; statuses {sorted(bot.statuses.items())}")
        # the app still serves: health, and a guest from hello to the next stage
        assert bot.healthz() == 200
        guest = teams.TeamsUser.make("After The Fuzz")
        status, _ = bot.post_json(teams.message(guest, bot.connector.url, "hi"))
        assert status == 201
        assert texts(bot.connector.to(guest.conversation_id)), "no answer after the fuzz"
        bad = bot.connector.invalid_cards()
        assert not bad, f"the bot sent invalid Adaptive Cards: {bad[:3]}"
    finally:
        bot.stop()


@pytest.fixture
def live(tmp_path, loopback_only, errors):
    yield from _live(tmp_path, EXAMPLE_CONFIG)


@pytest.fixture
def live_agents(tmp_path, loopback_only, errors):
    yield from _live(tmp_path, AGENTS)


def check(status: int, body: str, activity: Any, errors: ErrorLog) -> None:
    logged = errors.take()
    assert not logged, f"errors logged for {_short(activity)}: {logged}"
    invoke = isinstance(activity, dict) and activity.get("type") == "invoke"
    assert status < 500 or (status == 501 and invoke), (status, body[:300], _short(activity))


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=repr)
    return text[:600]


# -- strategies -------------------------------------------------------------------------

INTERESTING = [
    "", " ", "hi", "help", "HELP", "restart", "cancel", "stop waiting", "end", "transfer hr",
    "transfer", "transfer nowhere", "waiting", "chats", "switch 1", "switch 0", "switch ²",
    "switch 99999999999999999999999", "status available", "status away", "status offline",
    "status", "1", "5", "0", "-1", "IT", "HR", "Legal", "yes", "no", "skip",
    "<at>Switchboard</at> hi", "<at>", "${Guest.Name}", '{"$when": "${false}"}', "${",
    "\x00", "\u202e\u202d", "\ufeff", "null", "true", "[]", "{}", "NaN", "1e400",
    "http://127.0.0.1:1/", "💥" * 20, "a" * 10_001, "9" * 400, "\n" * 50,
    "<script>alert(1)</script>", "[link](https://example.com)", "**bold**", "E12345",
    # numbers over Python's int() limit (4,300 digits), where a rating or a chat is typed
    "9" * 4500, "switch " + "9" * 4500, "0" * 5000 + "3", "9" * 4500 + " stars",
    "4" * 4400 + "/5 great", "\u0663" * 4500, "switch " + "0" * 5000 + "1",
]
# what makes a regex backtrack: unclosed mentions (8 s before), runs of one character (64 KB
# at most: typed by the guests and agents of `test_fuzz_worst_typed_text`)
BACKTRACKING = [
    "<at>" * 16_000, "<at>x" * 5000 + "</at", "<at>" * 8000 + "</at>" + "<at>" * 8000,
    "a" * 9999 + "!", "1" + " " * 10_000 + "x", "1 out" + " " * 10_000 + "of", "1." * 5000,
    "1" * 60_000 + "x", "-" * 60_000, " " * 60_000 + "1",
]
SURROGATES = st.lists(st.integers(0xD800, 0xDFFF).map(chr), min_size=1, max_size=3).map(
    "".join)
TEXT = st.one_of(st.text(max_size=40), st.sampled_from(INTERESTING), SURROGATES,
                 st.text(alphabet=st.sampled_from("ab ²٣\u0301\U0001f600\x00"), max_size=20))
ACTIVITY_KEYS = sorted(v["key"].split(".")[0] for v in Activity._attribute_map.values())
KEYS = st.one_of(st.text(max_size=12), st.sampled_from([
    *ACTIVITY_KEYS, "switchboard", "verb", "session", "stage", "choice", "tenant", "answer",
    "rating", "id", "action", "data", "type", "eventType", "aadObjectId", "name", "content",
    "contentType",
]))
LEAVES = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False), TEXT,
)
JSON = st.recursive(
    LEAVES,
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(KEYS, inner, max_size=4)),
    max_leaves=12,
)


class Deep:
    """A value nested `depth` levels deep, written into the JSON only when it is sent (as a
    Python object it would exhaust the recursion of json.dumps and of hypothesis' printer)."""

    def __init__(self, depth: int) -> None:
        self.depth = depth

    def __repr__(self) -> str:
        return f"Deep({self.depth})"

    def json(self) -> str:
        half = self.depth // 2
        return '[{"k":' * half + ("[]" if self.depth % 2 else '"x"') + "}]" * half


DEEP = st.sampled_from([8, 30, 60, 63, 64, 65, 70, 200, 990, 5000]).map(Deep)


def dumps(value: Any) -> bytes:
    """JSON, with each Deep written in place."""
    deep: list[Deep] = []

    def default(obj: Any) -> Any:
        if isinstance(obj, Deep):
            deep.append(obj)
            return f"@@deep-{len(deep) - 1}@@"
        raise TypeError(type(obj))

    text = json.dumps(value, default=default)
    for n, obj in enumerate(deep):
        text = text.replace(f'"@@deep-{n}@@"', obj.json(), 1)
    return text.encode()


# -- 1. bytes that are not (quite) JSON -------------------------------------------------

RAW_SAMPLES = [
    b"", b"{", b"}", b"[", b"null", b"true", b"1", b'"x"', b"[]", b"{}", b"NaN",
    b'{"type": NaN}', b'{"type": "message", "text": Infinity}', b"\xff\xfe{}", b"\x00",
    b'{"type": "message"', b'{"type": "message"}}', b"\xef\xbb\xbf{}", b'{"a": "\\ud800"}',
    b"[" * 100_000 + b"]" * 100_000, b'{"a":' * 40_000 + b"1" + b"}" * 40_000,
    b'{"type": "message", "value": ' + b"[" * 60_000 + b"]" * 60_000 + b"}",
    b'{"type": "message", "text": "' + b"\\u0000" * 1000 + b'"}',
]
CONTENT_TYPES = st.sampled_from([
    "application/json", "application/json; charset=utf-8", "application/json; charset=latin-1",
    "text/plain", "application/x-www-form-urlencoded", "", "application/jsonp",
    "multipart/form-data; boundary=x",
])


def test_fuzz_raw_bytes(live, errors):
    connector_url = live.connector.url

    @fuzz_settings(EXAMPLES["raw_bytes"])
    @given(
        body=st.one_of(
            st.binary(max_size=300),
            st.sampled_from(RAW_SAMPLES),
            JSON.map(dumps),
            st.tuples(JSON, st.binary(min_size=1, max_size=8)).map(lambda t: dumps(t[0]) + t[1]),
            st.tuples(JSON, st.integers(0, 40)).map(lambda t: dumps(t[0])[: t[1]]),
        ),
        content_type=CONTENT_TYPES,
    )
    def case(body: bytes, content_type: str) -> None:
        try:
            parsed = json.loads(body)
        except (ValueError, RecursionError):
            parsed = None
            # the app cannot parse it either; but never risk an unchecked serviceUrl
            assume(b"serviceUrl" not in body)
        if isinstance(parsed, dict) and "serviceUrl" in parsed:
            body = json.dumps(safe_service_url(parsed, connector_url)).encode()
        status, text = live.post(body, content_type)
        check(status, text, body.decode("utf-8", "replace"), errors)
        if "application/json" not in content_type:
            assert status == 415
        elif len(body) > MAX_BODY_BYTES:
            assert status == 413
        elif not isinstance(parsed, dict):
            assert status == 400, (status, body[:200])

    case()


# -- 2. any JSON, mostly objects with an Activity's keys --------------------------------


def test_fuzz_json_values(live, errors):
    activity_like = st.dictionaries(
        st.sampled_from(ACTIVITY_KEYS) | st.text(max_size=8),
        JSON | DEEP,
        max_size=12,
    )

    @fuzz_settings(EXAMPLES["json_values"])
    @given(body=st.one_of(JSON, DEEP, activity_like, activity_like.map(_with_basics)))
    def case(body: Any) -> None:
        body = safe_service_url(body, live.connector.url)
        status, text = live.post_json(body)
        check(status, text, body, errors)
        if not isinstance(body, dict):
            assert status == 400

    case()


def _with_basics(body: dict[str, Any]) -> dict[str, Any]:
    """Enough of an Activity to get past the first checks, the rest random."""
    body.setdefault("type", "message")
    body["serviceUrl"] = "http://placeholder.invalid/"  # replaced by the connector's
    if not isinstance(body.get("conversation"), dict):
        body["conversation"] = {"id": "a:1fuzz-basics"}
    body["conversation"].setdefault("id", "a:1fuzz-basics")
    return body


# -- 3. a Teams activity with some of its fields replaced or removed --------------------

KINDS = ["message", "invoke", "conversationUpdate", "installationUpdate", "messageReaction",
         "event", "typing", "messageUpdate", "messageDelete", "endOfConversation", "trace",
         "handoff", "command", "suggestion", "fuzz", "MESSAGE", " message"]
FIELDS = [
    ("type",), ("id",), ("timestamp",), ("localTimestamp",), ("channelId",), ("serviceUrl",),
    ("from",), ("from", "id"), ("from", "name"), ("from", "aadObjectId"), ("from", "role"),
    ("recipient",), ("recipient", "id"), ("conversation",), ("conversation", "id"),
    ("conversation", "conversationType"), ("conversation", "tenantId"),
    ("conversation", "isGroup"), ("channelData",), ("channelData", "tenant"),
    ("channelData", "tenant", "id"), ("channelData", "eventType"), ("channelData", "team"),
    ("channelData", "channel"), ("channelData", "settings"), ("locale",), ("text",),
    ("textFormat",), ("value",), ("value", "switchboard"), ("value", "action"),
    ("value", "action", "data"), ("value", "action", "verb"), ("value", "action", "type"),
    ("name",), ("attachments",), ("entities",), ("membersAdded",), ("membersRemoved",),
    ("reactionsAdded",), ("replyToId",), ("action",), ("deliveryMode",), ("importance",),
    ("relatesTo",), ("callerId",), ("valueType",), ("label",), ("summary",), ("speak",),
    ("inputHint",), ("expiration",), ("topicName",), ("historyDisclosed",), ("code",),
]


def _teams_shaped(kind: str, user: teams.TeamsUser, url: str) -> dict[str, Any]:
    if kind == "conversationUpdate":
        return teams.install(user, url)
    activity = teams.message(user, url, "hi")
    activity["type"] = kind
    if kind == "invoke":
        activity["name"] = "adaptiveCard/action"
        activity["value"] = {"action": {"type": "Action.Execute", "verb": "answer",
                                        "data": {"answer": "x"}}}
    if kind == "installationUpdate":
        activity["action"] = "add"
    return activity


@st.composite
def mutated(draw, users: list[teams.TeamsUser], url: str) -> dict[str, Any]:
    activity = _teams_shaped(draw(st.sampled_from(KINDS)), draw(st.sampled_from(users)), url)
    for _ in range(draw(st.integers(1, 4))):
        path = draw(st.sampled_from(FIELDS))
        node = activity
        for key in path[:-1]:
            if not isinstance(node.get(key), dict):
                node[key] = {}
            node = node[key]
        if draw(st.booleans()):
            node.pop(path[-1], None)
        else:
            node[path[-1]] = draw(JSON | DEEP | st.sampled_from([None, url, url + "/"]))
    return activity


def test_fuzz_activity_fields(live, errors):
    users = [teams.TeamsUser.make(f"Field Guest {n}") for n in range(6)]

    @fuzz_settings(EXAMPLES["activity_fields"])
    @given(activity=mutated(users, live.connector.url))
    def case(activity: dict[str, Any]) -> None:
        status, text = live.post_json(activity)
        check(status, text, activity, errors)

    case()


# -- 4. valid Teams activities: guests (and agents) pressing, typing, installing -------

INVOKE_NAMES = [
    "adaptiveCard/action", "task/fetch", "task/submit", "composeExtension/query",
    "composeExtension/submitAction", "composeExtension/fetchTask", "composeExtension/queryLink",
    "composeExtension/selectItem", "composeExtension/setting", "config/fetch", "config/submit",
    "tab/fetch", "tab/submit", "signin/verifyState", "signin/tokenExchange", "healthCheck",
    "fileConsent/invoke", "actionableMessage/executeAction", "application/search",
    "message/submitAction", "handoff/action", "", "unknown/thing",
]
VERBS = ["answer", "choose", "cancel", "solved", "more", "rate", "skip", "accept", "delete",
         "ACCEPT", ""]


# What a person does next, drawn the same way whatever the app's state (hypothesis requires
# that); `turn` then makes it an activity against the cards the person has been sent.
PLAN = st.fixed_dictionaries({
    "who": st.integers(0, 99),
    "kind": st.sampled_from(["say"] * 6 + ["press"] * 6 + ["forge"] * 2 + [
        "install", "installationUpdate", "invoke", "other"]),
    "text": TEXT,
    "card": st.integers(0, 2),
    "button": st.integers(0, 9),
    "inputs": st.fixed_dictionaries({}, optional={
        "answer": TEXT, "rating": TEXT | st.integers(), "comment": TEXT}),
    "forge": st.sampled_from(["verb", "session", "stage", "choice", "tenant"]),
    "forged": st.sampled_from(VERBS) | JSON,
    "verb": st.sampled_from(VERBS),
    "action": st.sampled_from(["add", "remove", "add-upgrade", "remove-upgrade", "fuzz"]),
    "name": st.sampled_from(INVOKE_NAMES) | TEXT,
    "value": JSON,
    "type": st.sampled_from(KINDS) | TEXT.filter(bool),
})


def turn(plan: dict[str, Any], people: list[teams.TeamsUser], bot: LiveBot) -> dict[str, Any]:
    user = people[plan["who"] % len(people)]
    url = bot.connector.url
    kind = plan["kind"]
    if kind in ("press", "forge"):
        cards = [card for sent in bot.connector.to(user.conversation_id) for card in sent.cards
                 if list(teams._actions(card))][-3:]
        actions = [a for a in teams._actions(cards[plan["card"] % len(cards)])
                   if a.get("type") in ("Action.Submit", "Action.Execute")] if cards else []
        if not actions:
            value = {"switchboard": {"verb": plan["verb"], "session": plan["text"],
                                     "stage": plan["text"]}, **plan["inputs"]}
            return teams.message(user, url, value=value)
        card = cards[plan["card"] % len(cards)]
        action = actions[plan["button"] % len(actions)]
        build = teams.execute if action["type"] == "Action.Execute" else teams.submit
        activity = json.loads(json.dumps(
            build(user, url, card, plan["inputs"], action.get("title"))))
        if kind == "forge":
            data = (activity["value"]["action"]["data"] if activity["type"] == "invoke"
                    else activity["value"])
            board = data.setdefault("switchboard", {})
            if isinstance(board, dict):
                board[plan["forge"]] = plan["forged"]
        return activity
    if kind == "say":
        return teams.message(user, url, plan["text"])
    if kind == "install":
        return teams.install(user, url)
    activity = teams.message(user, url, plan["text"])
    if kind == "installationUpdate":
        activity.update(type="installationUpdate", action=plan["action"])
    elif kind == "invoke":
        activity.update(type="invoke", name=plan["name"], value=plan["value"])
    else:
        activity["type"] = plan["type"]
    return activity


def _fuzz_turns(bot: LiveBot, errors: ErrorLog, people, examples: int, timers: bool) -> None:
    @fuzz_settings(examples)
    @given(plan=PLAN, fire=st.booleans() if timers else st.just(False))
    def case(plan: dict[str, Any], fire: bool) -> None:
        activity = turn(plan, people, bot)
        status, text = bot.post_json(activity)
        check(status, text, activity, errors)
        if fire:
            bot.run(bot.server.fire_timers())
            check(200, "", {"fired timers after": activity}, errors)

    case()


def test_fuzz_teams_guests(live, errors):
    people = [teams.TeamsUser.make(name) for name in ("Ada", "Bo", "Cy", "Di", "Ed", "Flo")]
    _fuzz_turns(live, errors, people, EXAMPLES["teams_guests"], timers=False)
    # the guests got somewhere: sessions were opened and moved on
    sessions = live.run(live.server.app[SESSIONS].list())
    assert len({s.conversation_id for s in sessions}) >= 5
    assert len({s.stage_key for s in sessions}) >= 3


def test_fuzz_teams_agents(live_agents, errors):
    agents = [person(*who) for who in (ALICE, BOB, CAROL, DAVE)]
    guests = [teams.TeamsUser.make(name) for name in ("Gus", "Hal", "Ivy", "Jo")]
    for agent in agents:  # the agents install the app first, as in real life
        assert live_agents.post_json(teams.install(agent, live_agents.connector.url))[0] == 201
    _fuzz_turns(live_agents, errors, agents + guests, EXAMPLES["teams_agents"], timers=True)
    offers = [s for a in agents for s in live_agents.connector.to(a.conversation_id)
              if "New chat waiting" in s.all_text()]
    assert offers, "the fuzz never got a guest as far as an agent"


# -- 5. bodies around the size limit ----------------------------------------------------


def test_huge_bodies_get_413_beyond_the_limit_and_are_served_below_it(live, errors):
    user = teams.TeamsUser.make("Big Talker")
    url = live.connector.url
    for target in (100_000, MAX_BODY_BYTES - 10, MAX_BODY_BYTES, MAX_BODY_BYTES + 1,
                   MAX_BODY_BYTES + 100, 1024 * 1024, 8 * 1024 * 1024):
        for shape in ("text", "attachment", "value", "entities"):
            activity = _padded(teams.message(user, url, "hi"), shape, target)
            body = json.dumps(activity).encode()
            assert abs(len(body) - target) <= 1, (len(body), target)
            status, text = live.post(body)
            check(status, text, f"{shape} of {len(body)} bytes", errors)
            if len(body) > MAX_BODY_BYTES:
                assert status == 413, (shape, len(body), status)
            else:
                assert status in (200, 201), (shape, len(body), status, text[:200])


def _padded(activity: dict[str, Any], shape: str, size: int) -> dict[str, Any]:
    """`activity` with a string grown until the JSON body is `size` bytes."""

    def pad(n: int) -> None:
        if shape == "text":
            activity["text"] = "x" * n
        elif shape == "attachment":
            activity["attachments"] = [{"contentType": "text/plain", "content": "y" * n}]
        elif shape == "value":
            activity["value"] = {"answer": "z" * n}
        else:
            activity["entities"] = [{"type": "e", "t": "w" * n}]

    pad(0)
    pad(max(0, size - len(json.dumps(activity).encode())))
    return activity


# -- 5b. the worst typed text, where guests and agents type ----------------------------


def test_fuzz_worst_typed_text(live_agents, errors):
    """Backtracking texts and long numbers, typed at every stage a guest or an agent reaches
    here (the agents' desk config: questions, menus, waiting, chatting with an agent): each
    turn takes under 2 s even on a loaded machine (the mention regex held the event loop for
    8 s) and logs nothing at ERROR."""
    bot = live_agents
    agents = [person(*who) for who in (ALICE, BOB)]
    for agent in agents:
        assert bot.post_json(teams.install(agent, bot.connector.url))[0] == 201
    guests = [teams.TeamsUser.make(f"Typist {n}") for n in range(4)]

    @fuzz_settings(EXAMPLES["worst_typed_text"])
    @given(who=st.sampled_from(agents + guests), text=st.sampled_from(BACKTRACKING) | TEXT,
           prefix=st.sampled_from(["", "switch ", "transfer ", "status ", "<at>Bot</at> "]))
    def case(who: teams.TeamsUser, text: str, prefix: str) -> None:
        activity = teams.message(who, bot.connector.url, prefix + text)
        started = time.perf_counter()
        status, body = bot.post_json(activity)
        took = time.perf_counter() - started
        check(status, body, f"{who.name}: {(prefix + text)[:100]!r}", errors)
        assert took < 2.0, f"{took:.1f} s for {(prefix + text)[:60]!r}"  # the regex: 8 s

    case()


# -- 6. charsets and content encodings --------------------------------------------------

CHARSETS = [None, "utf-8", "UTF8", "latin-1", "utf-16", "utf-32", "ascii", "cp1252", "utf-7",
            "idna", "nonexistent", "rot13", "base64", "hex", "zlib_codec", "bz2", "quopri",
            "uu", "", '"utf-8"', "utf-8, latin-1", "\u00e9", "x" * 300]
# aiohttp reads an empty charset as none, and "utf-8, latin-1" as utf-8
NOT_TEXT = {"nonexistent", "rot13", "base64", "hex", "zlib_codec", "bz2", "quopri", "uu",
            "\u00e9", "x" * 300}
ENCODINGS = [None, "gzip", "deflate", "x-gzip", "identity", "br", "zstd", "gzip, deflate",
             "compress", "bogus", "", "GZIP"]
PACKINGS = {
    "plain": lambda b: b,
    "gzip": gzip.compress,
    "deflate": zlib.compress,
    "gzip, cut short": lambda b: gzip.compress(b)[: max(1, len(gzip.compress(b)) // 2)],
    "gzip twice": lambda b: gzip.compress(gzip.compress(b)),
    "a gzip bomb": lambda b: gzip.compress(b[:-2] + b" " * 2_000_000 + b[-2:], 9),
}


def test_fuzz_charsets_and_encodings(live, errors):
    users = [teams.TeamsUser.make(f"Charset Guest {n}") for n in range(4)]
    url = live.connector.url

    @fuzz_settings(EXAMPLES["charsets_and_encodings"])
    @given(
        body=st.one_of(
            st.tuples(st.sampled_from(users), TEXT).map(
                lambda t: json.dumps(teams.message(t[0], url, t[1])).encode()),
            st.sampled_from(users).map(lambda u: json.dumps(teams.install(u, url)).encode()),
            st.sampled_from(RAW_SAMPLES[:19]),
            st.binary(max_size=100),
        ),
        charset=st.sampled_from(CHARSETS),
        encoding=st.sampled_from(ENCODINGS),
        packing=st.sampled_from(sorted(PACKINGS)),
        chunked=st.booleans(),
    )
    def case(body: bytes, charset: str | None, encoding: str | None, packing: str,
             chunked: bool) -> None:
        content_type = "application/json" + (f"; charset={charset}" if charset is not None
                                              else "")
        headers = {"Content-Encoding": encoding} if encoding is not None else {}
        sent = PACKINGS[packing](body)
        status, text = live.post(sent, content_type, headers=headers, chunked=chunked)
        check(status, text, f"{content_type} {headers} {packing} {body[:200]!r}", errors)
        if charset in NOT_TEXT and encoding is None and len(sent) <= MAX_BODY_BYTES:
            # (aiohttp itself refuses some encodings before the bot sees the request)
            assert status == 400 and "charset" in text, (charset, status, text)

    case()


# -- 7. nulls and id-less members in the lists botbuilder dispatches on ------------------

LIST_FIELDS = ["membersAdded", "membersRemoved", "reactionsAdded", "reactionsRemoved",
               "attachments", "entities", "listenFor", "textHighlights", "onBehalfOf"]
ITEMS = st.one_of(
    st.sampled_from([None, {}, {"id": ""}, {"id": None}, {"name": "x"}, {"id": 5},
                     dict(teams.BOT), {"id": "29:someone", "name": None}, "x", 5, [], {"id": []}]),
    JSON,
)


def test_fuzz_lists_botbuilder_dispatches(live, errors):
    users = [teams.TeamsUser.make(f"List Guest {n}") for n in range(4)]
    url = live.connector.url

    @fuzz_settings(EXAMPLES["lists_botbuilder_dispatches"])
    @given(
        kind=st.sampled_from(["conversationUpdate", "message", "messageReaction",
                              "installationUpdate", "invoke"]),
        user=st.sampled_from(users),
        channel=st.sampled_from(["msteams", "webchat", "emulator", "directline"]),
        fields=st.dictionaries(st.sampled_from(LIST_FIELDS), st.lists(ITEMS, max_size=4),
                               min_size=1, max_size=3),
    )
    def case(kind: str, user: teams.TeamsUser, channel: str,
             fields: dict[str, list[Any]]) -> None:
        activity = _teams_shaped(kind, user, url)
        activity["channelId"] = channel
        for key, items in fields.items():
            if key == "onBehalfOf":
                activity["channelData"][key] = items
            else:
                activity[key] = items
        status, text = live.post_json(activity)
        check(status, text, activity, errors)
        if any(None in items for key, items in fields.items()
               if key != "onBehalfOf" or channel == "msteams"):
            assert status == 400, (status, text)

    case()


# -- 8. many distinct serviceUrls ---------------------------------------------------------


def _open_files() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_fuzz_distinct_service_urls(live, errors):
    """Each case is a new guest from a serviceUrl never seen before (one local connector
    under many path prefixes, answered by its catch-all route), so the bot's cache of
    connector clients keeps evicting: the evicted ones must be closed."""
    regions = itertools.count()
    url = live.connector.url
    before = _open_files()
    # the collector would close what was dropped, eventually (the bot makes full collections
    # rare): off while the cases run, so only what the bot closes itself counts
    gc.disable()

    @fuzz_settings(EXAMPLES["distinct_service_urls"])
    @given(kind=st.sampled_from(["install", "install", "message"]), text=TEXT)
    def case(kind: str, text: str) -> None:
        region = next(regions)
        service_url = f"{url}/region-{region}/"
        user = teams.TeamsUser.make(f"Region Guest {region}")  # a new guest: a new session
        if kind == "message":
            activity = teams.message(user, service_url, text)
        else:
            activity = teams.install(user, service_url)
            activity["from"].pop("name")  # as Teams: the bot asks that connector for it
        status, body = live.post(dumps(activity))
        check(status, body, activity, errors)

    try:
        case()
        grown = _open_files() - before
    finally:
        gc.enable()
    # the cached clients' connections, seen from both ends (the connector is in-process)
    assert grown <= 2 * MAX_CLIENTS + 20, f"{grown} more files open"


# -- what the fuzz found, pinned (on both stores) ---------------------------------------

_DROP = object()


def _nested_value(depth: int) -> Any:
    value: Any = "x"
    for _ in range(depth):
        value = [value]
    return value


FOUND = {
    # each was a 500, or a turn that failed (logged, the guest told "Sorry"), before
    "JSON nested 100,000 deep": (None, 400),
    "a value nested 900 deep": (dict(value={"answer": _nested_value(900)}), 400),
    "a lone surrogate in the text": (dict(text="caf\ud835"), 400),
    "a lone surrogate in a key": (dict(value={"\udc00": "x"}), 400),
    "an id that is an object": (dict(id={"a": 1}), 400),
    "a text that is a number": (dict(text=5), 400),
    "a Teams activity without channelData": (dict(channelData=_DROP), 400),
    "a Teams channelData with a team that is a number": (dict(channelData={"team": 5}), 400),
    "task/fetch with a value that is a number": (
        dict(type="invoke", name="task/fetch", value=5), 501),
    "composeExtension/submitAction without a value": (
        dict(type="invoke", name="composeExtension/submitAction", value=_DROP), 501),
    "an Execute whose verb is a list": (dict(type="invoke", name="adaptiveCard/action", value={
        "action": {"type": "Action.Execute", "verb": ["accept"], "data": {}}}), 200),
}


@pytest.mark.parametrize("case", list(FOUND))
async def test_what_the_fuzz_found(bot, connector, case, caplog):
    changes, expected = FOUND[case]
    if changes is None:
        body = b"[" * 100_000 + b"]" * 100_000
    else:
        user = teams.TeamsUser.make("Pinned")
        activity = teams.message(user, connector.url, "hi")
        for key, value in changes.items():
            if value is _DROP:
                activity.pop(key, None)
            else:
                activity[key] = value
        body = json.dumps(activity).encode()
    caplog.set_level("WARNING")
    async with bot.http.post(f"{bot.url}/api/messages", data=body,
                             headers={"Content-Type": "application/json"}) as resp:
        assert resp.status == expected, (case, await resp.text())
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not [s for s in connector.sent if "went wrong" in s.all_text()]


async def test_a_need_without_a_word_gets_past_the_knowledge_base(bot, new_chat, caplog):
    """bm25s raised ValueError for a question with no word in it ("?", an emoji)."""
    for need in ("?", "\U0001f4a5", "x"):
        chat = new_chat()
        await chat.say("hi")
        sent = await chat.answer(need)
        assert "Which department should handle this?" in texts(sent), texts(sent)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_an_agent_switching_to_a_superscript_number_is_told_how(tmp_path, make_docs,
                                                                    connector, caplog):
    """`"²".isdigit()` is True but `int("²")` raises: the agent got "Sorry..."."""
    server = await BotServer(settings_for(tmp_path, config_path=str(AGENTS)),
                             docs=make_docs()).start()
    try:
        alice = person(*ALICE)
        for text in ("hi", "switch ²", "switch ٣"):
            status, _ = await server.post(teams.message(alice, connector.url, text))
            assert status == 201
        said = texts(connector.to(alice.conversation_id))
        assert said.count("Use **switch <number>**") == 2 and "went wrong" not in said
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    finally:
        await server.stop()
