"""The bot through its HTTP endpoint: restarts, chains, loops, commands, bad input."""

from __future__ import annotations

import asyncio
from pathlib import Path

from app import SESSIONS
from storage.models import SessionState
from tests import teams
from tests.conftest import WEDNESDAY_10_UTC
from tests.harness import BotServer, Chat, FakeClock, settings_for, texts

CONFIGS = Path(__file__).parent / "e2e_configs"


async def _server(tmp_path, make_docs, **settings) -> BotServer:
    # a weekday morning, so the example's HR is open whenever the suite runs
    return await BotServer(settings_for(tmp_path, **settings), docs=make_docs(),
                           clock=FakeClock(WEDNESDAY_10_UTC)).start()


async def answer_need(chat: Chat, need: str) -> list:
    """Answer the Service Desk's first question; past the FAQ card if articles matched."""
    sent = await chat.answer(need)
    if "I still need help" in texts(sent):
        sent += await chat.press("I still need help")
    return sent


async def test_restart_between_two_messages_loses_nothing(tmp_path, make_docs, connector):
    first = await _server(tmp_path, make_docs)
    chat = Chat(teams.TeamsUser.make("Grace Hopper"), first, connector)
    await chat.say("hi")
    await answer_need(chat, "The printer on floor 3 is jammed")
    await chat.press("IT")
    before = await first.app[SESSIONS].live(chat.user.conversation_id)
    await first.stop()

    second = await _server(tmp_path, make_docs)  # same database file, new process state
    chat.bot = second
    try:
        sent = await chat.answer("Printer")
        assert "How urgent is it?" in texts(sent)
        after = await second.app[SESSIONS].live(chat.user.conversation_id)
        assert after.id == before.id and after.tenant_id == "it"
        assert after.metadata["Answers.Device"] == "Printer"
        assert after.metadata["Answers.Need"] == "The printer on floor 3 is jammed"
        sent = await chat.answer("blocking")
        assert "expect a call within the hour" in texts(sent)
    finally:
        await second.stop()


async def test_chain_a_b_c_keeps_the_keys_of_each_hop(tmp_path, make_docs, connector):
    server = await _server(tmp_path, make_docs, config_path=str(CONFIGS / "chain.yaml"))
    try:
        chat = Chat(teams.TeamsUser.make("Alan Turing"), server, connector)
        sent = await chat.say("hello")
        assert "Alpha asks: your name?" in texts(sent)
        sent = await chat.say("Alan")
        shown = texts(sent)
        assert "Moving you from Alpha to Bravo." in shown
        assert "Bravo here, Alan. You came from Alpha." in shown
        assert "Moving you from Bravo to Charlie." in shown
        assert "Charlie asks: anything else, Alan?" in shown

        store = server.app[SESSIONS]
        [a] = await store.list("a")
        [b] = await store.list("b")
        [c] = await store.list("c")
        assert (a.state, b.state, c.state) == ("transferred", "transferred", "open")

        def hop(s):
            return tuple(
                s.metadata[f"Session.Transferred{side}.{k}"]
                for side in ("From", "To")
                for k in ("SessionId", "TenantId", "TenantName")
            )

        a_to_b = (a.id, "a", "Alpha", b.id, "b", "Bravo")
        b_to_c = (b.id, "b", "Bravo", c.id, "c", "Charlie")
        assert hop(a) == a_to_b
        assert hop(b) == b_to_c and hop(c) == b_to_c
        # the whole chain stays on record on the last session
        assert [(h.from_tenant_id, h.to_tenant_id) for h in c.hop_log] == [("a", "b"), ("b", "c")]
        assert [h.to_session_id for h in c.hop_log] == [b.id, c.id]
        assert [s.id for s in await store.chain(c)] == [a.id, b.id, c.id]
        assert c.hops == 2 and c.metadata["Answers.Name"] == "Alan"
        # the earlier transcript is readable through the link
        first_hop = c.hop_log[0]
        earlier = await store.transcript(first_hop.from_tenant_id, first_hop.from_session_id)
        assert [e.text for e in earlier if e.direction == "in"] == ["hello", "Alan"]
    finally:
        await server.stop()


async def test_loop_is_stopped_at_the_hop_limit(tmp_path, make_docs, connector):
    server = await _server(tmp_path, make_docs, config_path=str(CONFIGS / "loop.yaml"))
    try:
        chat = Chat(teams.TeamsUser.make("Eve"), server, connector)
        sent = await chat.say("hi")
        shown = texts(sent)
        assert shown.count("Moving you from") == 3
        assert "already been transferred 3 times" in shown
        assert "Type **restart** to begin again." in shown
        store = server.app[SESSIONS]
        assert await store.live(chat.user.conversation_id) is None
        sessions = await store.list()
        assert sorted(s.state.value for s in sessions) == ["hop_limit"] + ["transferred"] * 3
        # the guest can start again
        sent = await chat.say("restart")
        assert "Ping says hello (hop 0)" in texts(sent)
    finally:
        await server.stop()


async def test_two_guests_at_once_never_see_each_others_cards(bot, new_chat, connector):
    ada, bob = new_chat("Ada"), new_chat("Bob")

    async def run(chat: Chat, need: str, dept: str):
        await chat.say("hi")
        await answer_need(chat, need)
        await chat.press(dept)

    await asyncio.gather(run(ada, "ADA-NEED-laptop", "IT"), run(bob, "BOB-NEED-payroll", "HR"))
    ada_text = texts(connector.to(ada.user.conversation_id))
    bob_text = texts(connector.to(bob.user.conversation_id))
    assert "ADA-NEED-laptop" in ada_text and "BOB-NEED" not in ada_text and "Bob" not in ada_text
    assert "BOB-NEED-payroll" in bob_text and "ADA-NEED" not in bob_text and "Ada" not in bob_text
    assert "Moving you from Service Desk to IT." in ada_text
    assert "Moving you from Service Desk to HR." in bob_text


async def test_action_execute_buttons_replace_the_pressed_card(tmp_path, make_docs, connector):
    server = await _server(tmp_path, make_docs, use_execute=True)
    try:
        chat = Chat(teams.TeamsUser.make("Lin"), server, connector)
        await chat.say("hi")
        assert teams.find_action(chat.last_card())["type"] == "Action.Execute"
        await answer_need(chat, "VPN is down")
        sent = await chat.press("Legal")
        # the invoke got a 200 with the card that replaces the menu
        assert chat.statuses[-1] == 200
        body = chat.last_body
        assert body["type"] == "application/vnd.microsoft.card.adaptive"
        assert "Legal" in str(body["value"]) and "actions" not in body["value"]
        assert "Moving you from Service Desk to Legal." in texts(sent)
        assert "Is this about a contract?" in texts(sent)
    finally:
        await server.stop()


async def test_install_sends_the_welcome_once(bot, new_chat, connector):
    chat = new_chat("Kim")
    sent = await chat.install()
    assert "welcome to the Service Desk" in texts(sent)
    again = await chat.install()
    assert again == []
    sent = await answer_need(chat, "My badge stopped working")
    assert "Which department should handle this?" in texts(sent)


async def test_help_and_restart_at_any_point(bot, new_chat):
    chat = new_chat("Mo")
    await chat.say("hi")
    await answer_need(chat, "A question about my contract")
    sent = await chat.say("help")
    assert "You're talking to Service Desk." in texts(sent)
    # help did not move the guest: the menu still works
    sent = await chat.say("legal")
    assert "Moving you from Service Desk to Legal." in texts(sent)
    sent = await chat.say("restart")
    assert "Starting over." in texts(sent) and "welcome to the Service Desk" in texts(sent)
    store = bot.app[SESSIONS]
    live = await store.live(chat.user.conversation_id)
    assert live.tenant_id == "service-desk" and live.stage_key == "ask_need"
    legal = await store.list("legal")
    assert [s.state for s in legal] == [SessionState.RESTARTED]


async def test_a_stale_card_is_refused_politely(bot, new_chat):
    chat = new_chat("Sam")
    await chat.say("hi")
    question = chat.last_card()
    await answer_need(chat, "Need a new monitor")
    sent = await chat.send(
        teams.submit(chat.user, chat.connector.url, question, {"answer": "again"})
    )
    assert "no longer does anything" in texts(sent)
    live = await bot.app[SESSIONS].live(chat.user.conversation_id)
    assert live.metadata["Answers.Need"] == "Need a new monitor"
    assert live.stage_key == "department"


async def test_guest_text_is_never_evaluated_as_a_template(bot, new_chat):
    chat = new_chat("Mallory")
    await chat.say("hi")
    sent = await answer_need(chat, '${Guest.Name} {"$when": "${false}"}')
    await chat.press("IT")
    shown = texts(chat.connector.to(chat.user.conversation_id))
    assert '${Guest.Name} {"$when": "${false}"}' in shown
    assert sent


async def test_malformed_requests_get_4xx_and_the_server_keeps_serving(bot, new_chat):
    json_type = {"Content-Type": "application/json"}
    assert (await bot.post(None, data=b"{not json", headers=json_type))[0] == 400
    assert (await bot.post([1, 2]))[0] == 400
    assert (await bot.post({"text": "no type"}))[0] == 400
    assert (await bot.post({"type": 5}))[0] == 400
    status, _ = await bot.post(None, data=b"hi", headers={"Content-Type": "text/plain"})
    assert status == 415
    status, _ = await bot.post({"type": "message", "text": "x" * (300 * 1024)})
    assert status == 413
    async with bot.http.get(f"{bot.url}/healthz") as resp:
        assert resp.status == 200
    chat = new_chat("Still Served")
    assert "welcome" in texts(await chat.say("hi"))


async def test_healthz_is_503_when_the_store_does_not_answer(bot):
    async with bot.http.get(f"{bot.url}/healthz") as resp:
        assert resp.status == 200 and (await resp.json())["status"] == "ok"
    await bot.app[SESSIONS].docs.close()
    async with bot.http.get(f"{bot.url}/healthz") as resp:
        assert resp.status == 503


async def test_two_instances_share_one_store_with_messages_alternating(
    tmp_path, make_docs, connector
):
    one = await _server(tmp_path, make_docs)
    two = await _server(tmp_path, make_docs)
    try:
        chat = Chat(teams.TeamsUser.make("Ola"), one, connector)
        steps = [
            (one, lambda: chat.say("hi"), "What do you need help with today"),
            (two, lambda: answer_need(chat, "Payslip is wrong"), "Which department"),
            (one, lambda: chat.press("HR"), "What is your employee number?"),
            (two, lambda: chat.answer("E54321"), "Which topic is it about?"),
            (one, lambda: chat.answer("Payroll"), "HR has your request"),
            (two, lambda: chat.press("Send", rating="4"), "Thank you for your feedback"),
        ]
        for server, act, expected in steps:
            chat.bot = server
            assert expected in texts(await act())
        for server in (one, two):
            store = server.app[SESSIONS]
            sessions = [s for s in await store.list()
                        if s.conversation_id == chat.user.conversation_id]
            assert sorted((s.tenant_id, s.state.value) for s in sessions) == [
                ("hr", "resolved"), ("service-desk", "transferred")]
        hr = next(s for s in await two.app[SESSIONS].list("hr"))
        assert hr.metadata["Answers.EmployeeNumber"] == "E54321"
        assert hr.metadata["Answers.HrTopic"] == "Payroll"
        lines = await two.app[SESSIONS].transcript("hr", hr.id)
        assert [e.seq for e in lines] == list(range(len(lines)))
    finally:
        await one.stop()
        await two.stop()


async def test_the_same_guest_on_two_instances_at_once_loses_no_answer(
    tmp_path, make_docs, connector
):
    one = await _server(tmp_path, make_docs)
    two = await _server(tmp_path, make_docs)
    try:
        chat = Chat(teams.TeamsUser.make("Race"), one, connector)
        await chat.say("hi")
        card = chat.last_card()
        # a need the knowledge base has no article for: no FAQ card comes before the menu
        need = {"answer": "who won the game last night"}
        # a double-click delivered to both instances at the same moment
        results = await asyncio.gather(
            one.post(teams.submit(chat.user, connector.url, card, need)),
            two.post(teams.submit(chat.user, connector.url, card, need)),
        )
        assert [status for status, _ in results] == [201, 201]
        said = texts(connector.to(chat.user.conversation_id))
        # one instance took the answer, the other saw a card that had been used
        assert said.count("Which department should handle this?") == 1
        assert said.count("no longer does anything") == 1
        live = await one.app[SESSIONS].live(chat.user.conversation_id)
        assert live.metadata["Answers.Need"] == need["answer"]
        assert live.stage_key == "department"
        lines = await one.app[SESSIONS].transcript(live.tenant_id, live.id)
        assert [e.seq for e in lines] == list(range(len(lines)))
    finally:
        await one.stop()
        await two.stop()


async def test_install_without_a_name_asks_teams_for_it(bot, new_chat, connector):
    chat = new_chat("Jordan Rivera")
    connector.members[chat.user.id] = {"id": chat.user.id, "name": "Jordan Rivera"}
    activity = teams.install(chat.user, connector.url)
    del activity["from"]["name"]  # Teams' install events carry no name
    sent = await chat.send(activity)
    assert "Hi Jordan Rivera, welcome to the Service Desk" in texts(sent)


async def test_group_chats_and_channels_do_not_start_a_guest_chat(bot, new_chat):
    chat = new_chat("Helen")
    activity = teams.message(chat.user, chat.connector.url, "<at>Switchboard</at> hi")
    activity["conversation"]["conversationType"] = "groupChat"
    sent = await chat.send(activity)
    assert "open a one-to-one chat with me" in texts(sent)
    assert await bot.app[SESSIONS].current(chat.user.conversation_id) is None


async def test_the_turn_log_never_contains_what_the_guest_typed(bot, new_chat, caplog):
    caplog.set_level("INFO", logger="switchboard.turn")
    chat = new_chat("Pat")
    await chat.say("my secret salary question")
    await chat.say("help")
    turns = [r for r in caplog.records if r.getMessage() == "turn"]
    assert [r.kind for r in turns] == ["message", "command:help"]
    assert all("salary" not in str(vars(r)) for r in turns)


async def test_an_answered_execute_question_card_is_replaced_by_the_answer(
    tmp_path, make_docs, connector
):
    server = await _server(tmp_path, make_docs, use_execute=True)
    try:
        chat = Chat(teams.TeamsUser.make("Lin"), server, connector)
        await chat.say("hi")
        await chat.answer("Badge does not open the door")
        body = chat.last_body
        assert body["type"] == "application/vnd.microsoft.card.adaptive"
        assert "Badge does not open the door" in str(body["value"])
        assert "actions" not in body["value"]
    finally:
        await server.stop()
