"""The lean adapter layer changes nothing a guest or agent can see: same scenario, same JSON."""

from __future__ import annotations

import re
from pathlib import Path

from tests import teams
from tests.harness import BotServer, Chat, FakeClock, settings_for

AGENTS = Path(__file__).parent / "e2e_configs" / "agents.yaml"
# generated ids differ from run to run: session ids, activity ids, continuation uuids
_IDS = re.compile(
    r"\b[0-9a-f]{32}\b|activity-\d+|sent-\d+"
    r"|\b[0-9a-f]{8}-[0-9a-f]{4}-[1-5][0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}\b"
)


def _normal(value):
    if isinstance(value, dict):
        return {k: _normal(v) for k, v in value.items() if k not in ("id", "timestamp")}
    if isinstance(value, list):
        return [_normal(v) for v in value]
    if isinstance(value, str):
        return _IDS.sub("<id>", value)
    return value


async def _run(tmp_path, connector, lean: bool) -> list:
    clock = FakeClock()
    server = await BotServer(
        settings_for(tmp_path / str(lean), config_path=str(AGENTS), lean_adapter=lean),
        clock=clock,
    ).start()
    connector.clear()
    try:
        alice = Chat(teams.TeamsUser("Alice", "aaaaaaaa-0000-0000-0000-000000000001",
                                     "a:1alice"), server, connector)
        guest = Chat(teams.TeamsUser("Gail", "11111111-2222-3333-4444-555555555555",
                                     "a:1gail"), server, connector)
        await alice.install()
        await guest.say("hi")
        await guest.say("The VPN drops every hour")
        await server.fire_timers()
        offer = next(s for s in connector.to("a:1alice") if "New chat waiting" in s.all_text())
        status, body = await server.post(
            teams.execute(alice.user, connector.url, offer.card, {}, "Accept"))
        await guest.say("Any idea?")
        await alice.say("Try the new profile")
        await alice.say("end")
        await guest.say("5")
        sent = [(s.conversation_id, s.how, _normal(s.activity)) for s in connector.sent]
        return [status, _normal(body), *sent]
    finally:
        await server.stop()


async def test_lean_and_stock_turns_send_exactly_the_same_activities(tmp_path, connector):
    stock = await _run(tmp_path, connector, lean=False)
    lean = await _run(tmp_path, connector, lean=True)
    assert len(lean) >= 12
    assert lean == stock
