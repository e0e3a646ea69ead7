"""A supervisor of HR never sees or acts on an IT chat: every route of the console's API,
through the real app, signed in against the local Entra stand-in."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from app import DOCS, SESSIONS
from console import CONSOLE
from pipelines.routing.supervise import Actor
from storage.agents import AgentStore, Presence
from storage.models import Phase
from tests.agent_desk import ALICE, Desk, waiting_guest
from tests.console_identity import ConsoleIdentity
from tests.console_support import (
    ADMIN,
    HR_SUPERVISOR,
    IT_SUPERVISOR,
    Browser,
    console_config,
    sign_in_settings,
)
from tests.harness import BotServer, FakeClock, settings_for, texts


@pytest.fixture(scope="module")
def identity(tmp_path_factory):
    server = ConsoleIdentity(tmp_path_factory.mktemp("console-identity")).start()
    yield server
    server.stop()


@pytest.fixture
async def scene(tmp_path, identity, monkeypatch, connector):
    """An IT chat waiting, an IT chat closed (folded, searchable), an HR chat waiting."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(identity.cert_path))
    clock = FakeClock()
    settings = settings_for(tmp_path, config_path=str(console_config(tmp_path)),
                            **sign_in_settings(identity))
    server = await BotServer(settings, clock=clock).start()
    desk = Desk(server, connector, clock)
    alice = await desk.agent(ALICE)
    closed = await waiting_guest(desk, "The printer on floor 3 smokes")
    await server.fire_timers()
    await desk.accept(alice, desk.offers(alice)[-1])
    await alice.say("end")
    await closed.say("5")
    waiting = await waiting_guest(desk, "Laptop will not boot")
    hr_guest = desk.guest("Harriet HR")
    await hr_guest.say("hi")
    sessions = server.app[SESSIONS]
    it_closed = (await sessions.current(closed.user.conversation_id))
    it_waiting = await desk.session(waiting)
    # every chat of this desk starts in IT: an admin moves this one to HR
    started = await desk.session(hr_guest)
    await server.app[CONSOLE].supervision.transfer(Actor("admin", "An Admin"), "it",
                                                   started.id, "hr")
    hr_waiting = await desk.session(hr_guest)
    await server.app[CONSOLE].folder.fold()
    hr = Browser(server)
    await hr.sign_in(identity, HR_SUPERVISOR)
    yield {"server": server, "hr": hr, "it_closed": it_closed, "it_waiting": it_waiting,
           "hr_waiting": hr_waiting, "desk": desk, "identity": identity, "waiting": waiting}
    await server.stop()


async def test_an_hr_supervisor_sees_no_it_chat_on_any_route(scene):
    hr: Browser = scene["hr"]
    it_ids = {scene["it_closed"].id, scene["it_waiting"].id}
    assert scene["hr_waiting"].tenant_id == "hr"

    status, live, _ = await hr.get("/console/api/live")
    assert status == 200 and list(live["departments"]) == ["hr"]
    assert not any(i in json.dumps(live) for i in it_ids)

    first = await first_event(hr, "/console/api/stream")
    assert list(first["departments"]) == ["hr"]

    for session_id in it_ids:
        status, body, _ = await hr.get(f"/console/api/chats/it/{session_id}")
        assert status == 404, body
    status, page, _ = await hr.get(f"/console/api/chats/hr/{scene['hr_waiting'].id}")
    assert status == 200 and page["session"]["tenant"] == "hr"

    status, found, _ = await hr.get("/console/api/search?text=printer")
    assert status == 200 and found["results"] == []
    status, found, _ = await hr.get("/console/api/search?name=gina")
    assert status == 200 and all(r["tenant_id"] == "hr" for r in found["results"])
    status, _, _ = await hr.get("/console/api/search?tenant=it")
    assert status == 404

    status, report, _ = await hr.get("/console/api/reports")
    assert status == 200 and {r["tenant"] for r in report["rows"]} == {"hr"}
    assert set(report["totals"]) == {"hr"}
    status, _, _ = await hr.get("/console/api/reports?tenant=it")
    assert status == 404
    status, csv, _ = await hr.get("/console/api/reports.csv")
    assert status == 200 and ",IT," not in csv and ",HR," in csv
    status, _, _ = await hr.get("/console/api/reports.csv?tenant=it&table=transfers")
    assert status == 404

    status, figures, _ = await hr.get(f"/console/api/figures?{_around_today()}")
    assert status == 200 and list(figures["departments"]) == ["hr"], figures
    status, _, _ = await hr.get(f"/console/api/figures?{_around_today()}&tenant=it")
    assert status == 404


async def test_an_hr_supervisor_cannot_act_on_an_it_chat_or_agent(scene):
    hr: Browser = scene["hr"]
    server = scene["server"]
    chat = scene["it_waiting"]
    for action, body in (("assign", {"agent": ALICE[1]}), ("transfer", {"target": "hr"}),
                         ("close", {"reason": "not mine"})):
        status, answer = await hr.post(f"/console/api/chats/it/{chat.id}/{action}", body)
        assert status == 404, (action, answer)
        # nor by naming its own department for another department's chat
        status, answer = await hr.post(f"/console/api/chats/hr/{chat.id}/{action}", body)
        assert status in (404, 409), (action, answer)
    after = await server.app[SESSIONS].get("it", chat.id)
    assert after.state.value == "open" and after.phase == Phase.WAITING
    assert texts(scene["waiting"]._new()).count("supervisor") == 0
    status, answer = await hr.post(f"/console/api/agents/{ALICE[1]}/presence",
                                   {"presence": "offline"})
    assert status == 404, answer
    assert (await AgentStore(server.app[DOCS]).get(ALICE[1])).presence == Presence.AVAILABLE


async def test_the_it_supervisor_sees_and_acts_on_it(scene):
    it = Browser(scene["server"])
    await it.sign_in(scene["identity"], IT_SUPERVISOR)
    status, live, _ = await it.get("/console/api/live")
    assert list(live["departments"]) == ["it"]
    assert live["departments"]["it"]["waiting"]["count"] == 1
    agents = live["departments"]["it"]["agents"]
    assert [a["skills"] for a in agents] == ["language:fr, vpn (3)", ""]
    status, found, _ = await it.get("/console/api/search?text=printer")
    assert [r["session_id"] for r in found["results"]] == [scene["it_closed"].id]
    status, answer = await it.post(f"/console/api/chats/it/{scene['it_waiting'].id}/close",
                                   {"reason": "We called you instead"})
    assert status == 200, answer


def _around_today(before: int = 1, after: int = 1) -> str:
    """A range of UTC dates around today: every department's today is in it."""
    today = datetime.now(UTC).date()
    return (f"from={(today - timedelta(days=before)).isoformat()}"
            f"&to={(today + timedelta(days=after)).isoformat()}")


async def test_the_figures_for_a_date_range_are_what_was_played(scene):
    """The scene played today: in IT, three chats started (one answered by Alice and ended,
    one waiting, one moved to HR by an admin); HR received that one and started none."""
    admin = Browser(scene["server"])
    await admin.sign_in(scene["identity"], ADMIN)
    status, body, _ = await admin.get(f"/console/api/figures?{_around_today()}")
    assert status == 200, body
    assert list(body["departments"]) == ["it", "hr"]
    it, hr = (body["departments"][t]["figures"] for t in ("it", "hr"))
    assert (it["started"], it["sent"], it["received_total"], it["answered"],
            it["deflected"], it["abandoned"], it["timed_out"]) == (3, {"hr": 1}, 0, 1, 0, 0, 0)
    assert (hr["started"], hr["received"], hr["sent_total"]) == (0, {"it": 1}, 0)
    assert body["departments"]["it"]["catching_up"] is False
    # the same as the live view's today (all of it played today)
    status, live, _ = await admin.get("/console/api/live")
    for tenant in ("it", "hr"):
        assert body["departments"][tenant]["figures"] == live["departments"][tenant]["today"]
    # one department; and days before the scene count nothing
    status, only, _ = await admin.get(f"/console/api/figures?{_around_today()}&tenant=hr")
    assert status == 200 and list(only["departments"]) == ["hr"]
    assert only["departments"]["hr"]["figures"] == hr
    status, past, _ = await admin.get(f"/console/api/figures?{_around_today(30, -1)}")
    assert status == 200 and past["from"] < past["to"]
    assert all(d["figures"]["started"] == 0 and d["figures"]["sent_total"] == 0
               and d["figures"]["received_total"] == 0 for d in past["departments"].values())


async def test_a_bad_range_gets_a_clear_400_and_the_console_keeps_serving(scene, caplog):
    hr: Browser = scene["hr"]
    today = datetime.now(UTC).date()
    bad = {
        "from=2026-13-01&to=2026-12-31": "YYYY-MM-DD",
        "from=yesterday": "YYYY-MM-DD",
        f"from={today}&to={today - timedelta(days=1)}": "starts after it ends",
        f"from={today - timedelta(days=92)}&to={today}": "at most 92 days",
        "from=9999-12-30&to=9999-12-31": "to today",
        "from=0001-01-01&to=0001-01-02": "from 2000-01-01",
    }
    for route in ("figures", "reports"):
        for query, says in bad.items():
            status, body, _ = await hr.get(f"/console/api/{route}?{query}")
            assert status == 400 and says in body, (route, query, status, body)
    assert not [r for r in caplog.records if r.levelname == "ERROR"], caplog.records
    status, body, _ = await hr.get(f"/console/api/figures?from={today - timedelta(days=91)}"
                                   f"&to={today}")
    assert status == 200 and list(body["departments"]) == ["hr"], body


async def first_event(browser: Browser, path: str) -> dict:
    """The first server-sent event of a stream (which never ends by itself)."""
    http = browser.server.http
    async with http.get(browser.server.url + path, headers=browser._headers()) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/event-stream")
        data = b""
        while b"\n\n" not in data:
            data += await response.content.readany()
    return json.loads(data.decode().split("data: ", 1)[1].split("\n\n", 1)[0])
