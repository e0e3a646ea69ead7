"""The seed's scenario end to end: real aiohttp app, real adapter, local connector.

The `bot` fixture's clock is a Wednesday at 10:00 UTC, when the example's HR is open.
"""

from __future__ import annotations

from app import DOCS, SESSIONS
from storage.config_store import active
from storage.models import SessionState
from tests import teams
from tests.harness import BotServer, Chat, FakeClock, settings_for, texts

SIX = (
    "Session.TransferredFrom.SessionId",
    "Session.TransferredFrom.TenantId",
    "Session.TransferredFrom.TenantName",
    "Session.TransferredTo.SessionId",
    "Session.TransferredTo.TenantId",
    "Session.TransferredTo.TenantName",
)
# Saturday 24 January 2026, 11:00 UTC: HR (weekdays, London) is closed
SATURDAY_11_UTC = 1_769_252_400.0


async def test_seed_scenario_service_desk_to_hr(bot, new_chat):
    chat = new_chat("Ada Lovelace")

    sent = await chat.say("hi")
    assert "Hi Ada Lovelace, welcome to the Service Desk" in texts(sent)
    assert "What do you need help with today, Ada Lovelace?" in texts(sent)

    # the knowledge base first: an article about parental leave
    sent = await chat.answer("I need to change my parental leave dates")
    faq = texts(sent)
    assert "These articles may answer your question:" in faq
    assert "Parental leave" in faq and "This solved it" in faq
    assert "I still need help" in faq

    sent = await chat.press("I still need help")
    menu = sent[-1].card
    assert [a["title"] for a in menu["actions"]] == ["IT", "HR", "Legal"]

    sent = await chat.press("HR")
    transfer_card, first_hr = sent[0], sent[1]
    assert "Moving you from Service Desk to HR." in transfer_card.all_text()
    assert "I need to change my parental leave dates" in transfer_card.all_text()
    assert "What is your employee number?" in first_hr.all_text()

    sessions = bot.app[SESSIONS]
    live = await sessions.live(chat.user.conversation_id)
    assert live.tenant_id == "hr" and live.state == SessionState.OPEN
    [desk] = await sessions.list("service-desk")
    assert desk.state == SessionState.TRANSFERRED
    expected = {
        "Session.TransferredFrom.SessionId": desk.id,
        "Session.TransferredFrom.TenantId": "service-desk",
        "Session.TransferredFrom.TenantName": "Service Desk",
        "Session.TransferredTo.SessionId": live.id,
        "Session.TransferredTo.TenantId": "hr",
        "Session.TransferredTo.TenantName": "HR",
    }
    for session in (desk, live):
        assert {k: session.metadata[k] for k in SIX} == expected
    assert live.metadata["Answers.Need"] == "I need to change my parental leave dates"
    assert live.metadata["Answers.Department"] == "HR"
    assert live.metadata["Faq.Suggested"].split(",")[0] == "hr-parental-leave"
    assert live.metadata["Guest.Name"] == "Ada Lovelace"
    assert live.metadata["Guest.AadTenantId"] == "72f988bf-86f1-41af-91ab-2d7cd011db47"

    # the rest of HR's pipeline
    sent = await chat.answer("12345")
    assert "please enter an employee number" in texts(sent)
    sent = await chat.answer("E12345")
    assert "Which topic is it about?" in texts(sent)
    sent = await chat.answer("Leave")
    summary = texts(sent)
    assert "HR has your request" in summary and "E12345" in summary
    assert "Transferred from Service Desk." in summary
    # then feedback, before the end
    assert "How did we do?" in summary
    assert (await sessions.get("hr", live.id)).state == SessionState.OPEN

    sent = await chat.press("Send", rating="5", comment="Quick and friendly")
    assert "Thank you for your feedback!" in texts(sent)
    done = await sessions.get("hr", live.id)
    assert done.state == SessionState.RESOLVED
    assert done.metadata["Feedback.Rating"] == 5
    assert done.metadata["Feedback.Comment"] == "Quick and friendly"

    transcript = await sessions.transcript("service-desk", desk.id)
    assert [e.direction for e in transcript][:2] == ["in", "out"]
    assert transcript[0].text == "hi"


async def test_an_faq_article_can_solve_it_before_any_department(bot, new_chat):
    chat = new_chat("Grace")
    await chat.say("hi")
    sent = await chat.answer("my laptop was stolen from my car")
    assert "Your laptop or phone was lost or stolen" in texts(sent)
    # the article's link is a button that opens it
    link = teams.find_action(chat.last_card(), "Read the article")
    assert link["type"] == "Action.OpenUrl" and link["url"].startswith("https://")

    sent = await chat.press("This solved it")
    assert "Glad that helped, Grace!" in texts(sent)
    sessions = bot.app[SESSIONS]
    assert await sessions.live(chat.user.conversation_id) is None
    [desk] = await sessions.list("service-desk")
    assert desk.state == SessionState.DEFLECTED
    assert desk.metadata["Faq.ArticleId"] == "it-lost-device"
    assert desk.metadata["Faq.ArticleTitle"] == "Your laptop or phone was lost or stolen"

    # writing again starts a new chat
    sent = await chat.say("hello again")
    assert "welcome to the Service Desk" in texts(sent)


async def test_a_need_the_knowledge_base_cannot_answer_goes_straight_to_the_menu(bot, new_chat):
    chat = new_chat("Linus")
    await chat.say("hi")
    sent = await chat.answer("Laptop fan is loud")
    assert "These articles may answer" not in texts(sent)
    assert "Which department should handle this?" in texts(sent)


async def test_hr_is_closed_at_the_weekend_and_picks_the_chat_up_when_it_opens(
        tmp_path, make_docs, connector):
    """The closed card says "write to us here again then and HR will pick it up": it does."""
    clock = FakeClock(SATURDAY_11_UTC)
    server = await BotServer(settings_for(tmp_path), docs=make_docs(), clock=clock).start()
    try:
        chat = Chat(teams.TeamsUser.make("Sat Urday"), server, connector)
        await chat.say("hi")
        await chat.answer("A question about my pension")
        await chat.press("I still need help")
        sent = await chat.press("HR")
        shown = texts(sent)
        assert "Moving you from Service Desk to HR." in shown
        assert "HR is closed right now" in shown
        assert "HR opens again on Monday 26 January at 00:00 (Europe/London)." in shown
        assert "write to us here again then and HR will pick it up" in shown
        assert "What is your employee number?" not in shown

        sessions = server.app[SESSIONS]
        live = await sessions.live(chat.user.conversation_id)
        assert live is not None and live.tenant_id == "hr" and live.state == SessionState.OPEN
        assert live.metadata["Tenant.NextOpenIso"] == "2026-01-26T00:00:00+00:00"

        # writing again while HR is still closed: still HR, still closed, not a new chat
        shown = texts(await chat.say("anyone there?"))
        assert "HR is closed right now" in shown
        assert "welcome to the Service Desk" not in shown

        # Monday: writing again goes on with HR, in the same session
        clock.now = SATURDAY_11_UTC + 2 * 86_400
        shown = texts(await chat.say("hello again"))
        assert "HR is open now: let's go on with your request." in shown
        assert "What is your employee number?" in shown
        assert "welcome to the Service Desk" not in shown
        again = await sessions.live(chat.user.conversation_id)
        assert again.id == live.id and again.metadata.get("Tenant.NextOpen") is None
        [hr] = await sessions.list("hr")
        assert hr.id == live.id
    finally:
        await server.stop()


async def test_the_loaded_config_is_kept_in_the_store(bot):
    snap = await active(bot.app[DOCS])
    assert snap is not None and snap.source.endswith("examples/helpdesk.yaml")
    assert [t["id"] for t in snap.config["tenants"]] == ["service-desk", "it", "hr", "legal"]
    assert len(snap.digest) == 64


async def test_hr_something_else_goes_to_a_live_agent(bot, new_chat, connector):
    helen = Chat(teams.TeamsUser("Helen Brooks", "00000000-0000-0000-0000-000000000104",
                                 "personal-chat-helen"), bot, connector)
    assert "You're an agent of HR" in texts(await helen.install())
    chat = new_chat("Jordan Rivera")
    await chat.say("hi")
    await chat.answer("A question about my contract hours")
    if "I still need help" in texts(chat.connector.to(chat.user.conversation_id)[-1:]):
        await chat.press("I still need help")
    await chat.press("HR")
    await chat.answer("E12345")
    sent = await chat.answer("Something else")
    assert "Connecting you with someone from HR" in texts(sent)
    await bot.fire_timers()
    [offer] = [s for s in helen._new() if "New chat waiting in HR" in s.all_text()]
    assert "Transferred from" in offer.all_text() and "Service Desk" in offer.all_text()
    assert "A question about my contract hours" in offer.all_text()
    status, body = await bot.post(teams.execute(helen.user, connector.url, offer.card, {},
                                                "Accept"))
    assert status == 200 and "You're chatting with Jordan Rivera" in str(body["value"])
    assert "You're now chatting with Helen Brooks" in texts(chat._new())
    await chat.say("Can I work 4 days a week?")
    assert "Jordan Rivera: \nCan I work 4 days a week?" in texts(helen._new())
    await helen.say("Yes, with your manager's approval.")
    assert "Helen Brooks: \nYes, with your manager's approval." in texts(chat._new())
    await helen.say("end")
    assert "HR has your request" in texts(chat._new())
