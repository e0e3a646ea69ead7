"""The seed's scenario end to end: real aiohttp app, real adapter, local connector."""

from __future__ import annotations

from app import DOCS, SESSIONS
from storage.config_store import active
from storage.models import SessionState
from tests.harness import texts

SIX = (
    "Session.TransferredFrom.SessionId",
    "Session.TransferredFrom.TenantId",
    "Session.TransferredFrom.TenantName",
    "Session.TransferredTo.SessionId",
    "Session.TransferredTo.TenantId",
    "Session.TransferredTo.TenantName",
)


async def test_seed_scenario_service_desk_to_hr(bot, new_chat):
    chat = new_chat("Ada Lovelace")

    sent = await chat.say("hi")
    assert "Hi Ada Lovelace, welcome to the Service Desk" in texts(sent)
    assert "What do you need help with today, Ada Lovelace?" in texts(sent)

    sent = await chat.answer("I need to change my parental leave dates")
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
    done = await sessions.get("hr", live.id)
    assert done.state == SessionState.RESOLVED

    transcript = await sessions.transcript("service-desk", desk.id)
    assert [e.direction for e in transcript][:2] == ["in", "out"]
    assert transcript[0].text == "hi"


async def test_the_loaded_config_is_kept_in_the_store(bot):
    snap = await active(bot.app[DOCS])
    assert snap is not None and snap.source.endswith("examples/helpdesk.yaml")
    assert [t["id"] for t in snap.config["tenants"]] == ["service-desk", "it", "hr", "legal"]
    assert len(snap.digest) == 64
