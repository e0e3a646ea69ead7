"""The console in a real browser (Debian's Chromium through Playwright): it loads with no
console errors; its numbers change live while the end-to-end harness drives guests through
the example help desk; assign connects the guest to the chosen agent (both get their cards
at the local connector); transfer and force-close do what they say; search finds a chat by
a word the guest typed; the figures switch to a date range while the live counts stay
live; the CSV downloads; and a supervisor of HR cannot see or act on an IT
chat. The live-view test saves the README's screenshot (docs/console.png)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from app import SESSIONS
from console import CONSOLE
from tests import teams
from tests.agent_desk import ALICE, Desk, waiting_guest
from tests.browser_support import chromium, new_context, open_tab
from tests.console_identity import ConsoleIdentity
from tests.console_support import HR_SUPERVISOR, console_config, sign_in_settings
from tests.harness import EXAMPLE_CONFIG, BotServer, Chat, FakeClock, settings_for, texts

SCREENSHOT = Path(__file__).resolve().parents[1] / "docs" / "console.png"
# a Wednesday morning: the example's HR is open
WEDNESDAY_10_UTC = 1_768_989_600.0
HELEN = ("Helen Brooks", "00000000-0000-0000-0000-000000000104")
PRIYA = ("Priya Shah", "00000000-0000-0000-0000-000000000102")


async def _until(condition, what: str, seconds: float = 10.0):
    for _ in range(int(seconds / 0.05)):
        value = condition()
        if value:
            return value
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _person(who: tuple[str, str], server: BotServer, connector) -> Chat:
    return Chat(teams.TeamsUser(who[0], who[1], f"a:1conv-{who[1]}"), server, connector)


async def _figure(page, tenant: str, figure: str) -> str:
    return (await page.locator(f'.dept[data-tenant="{tenant}"] [data-figure="{figure}"] .n')
            .inner_text()).strip()


async def _expect_figure(page, tenant: str, figure: str, value: str) -> None:
    locator = page.locator(f'.dept[data-tenant="{tenant}"] [data-figure="{figure}"] .n')
    await locator.filter(has_text=value).wait_for(timeout=10_000)


async def _to_hr_waiting(guest: Chat, need: str) -> None:
    await guest.say("hi")
    await guest.answer(need)
    if "I still need help" in texts(guest.connector.to(guest.user.conversation_id)[-1:]):
        await guest.press("I still need help")
    await guest.press("HR")
    await guest.answer("E12345")
    assert "Connecting you with someone from HR" in texts(await guest.answer("Something else"))


@pytest.fixture
async def example(tmp_path, connector):
    """The example help desk in local development mode (the console needs no sign-in on
    loopback), folding every second."""
    settings = settings_for(tmp_path, config_path=str(EXAMPLE_CONFIG), console_refresh=0.3,
                            console_fold_interval=1, console_fold_lag=0)
    server = await BotServer(settings, clock=FakeClock(WEDNESDAY_10_UTC)).start()
    yield server
    await server.stop()


async def test_the_console_live_with_actions_search_and_reports(example, connector, tmp_path):
    server = example
    helen, priya = _person(HELEN, server, connector), _person(PRIYA, server, connector)
    assert "You're an agent of HR" in texts(await helen.install())
    await priya.install()
    async with chromium() as browser:
        context = await new_context(browser, accept_downloads=True)
        tab = await open_tab(context, server.url + "/console/")
        page = tab.page
        await page.locator('.dept[data-tenant="hr"]').wait_for()
        assert await page.locator(".dept").count() == 4
        # each agent's skills beside their presence and load
        await page.locator('.dept[data-tenant="hr"] table.agents td.skills',
                           has_text="leave (2), payroll (3)").wait_for()
        assert await _figure(page, "hr", "waiting") == "0"

        # guests come: the numbers move without a reload
        jordan = Chat(teams.TeamsUser.make("Jordan Rivera"), server, connector)
        await jordan.say("hi")
        await _expect_figure(page, "service-desk", "pipeline", "1")
        await jordan.answer("A question about my contract hours")
        if "I still need help" in texts(jordan.connector.to(jordan.user.conversation_id)[-1:]):
            await jordan.press("I still need help")
        await jordan.press("HR")
        await jordan.answer("E12345")
        await jordan.answer("Something else")
        await _expect_figure(page, "hr", "waiting", "1")
        await server.fire_timers()  # Helen is offered the chat
        sam = Chat(teams.TeamsUser.make("Sam Deflected"), server, connector)
        await sam.say("hi")
        await sam.answer("How do I reset my password?")
        if "This solved it" in texts(connector.to(sam.user.conversation_id)):
            await sam.press("This solved it")
            await _expect_figure(page, "service-desk", "deflected", "1")
        casey = Chat(teams.TeamsUser.make("Casey Printer"), server, connector)
        await casey.say("hi")
        await casey.answer("The printer on floor 2 is jammed")
        if "I still need help" in texts(connector.to(casey.user.conversation_id)[-1:]):
            await casey.press("I still need help")
        await casey.press("IT")
        await _expect_figure(page, "it", "pipeline", "1")

        # assign Jordan to Helen from the waiting list
        row = page.locator('.dept[data-tenant="hr"] table.waiting tr').first
        await row.locator("select.assign-agent").select_option(HELEN[1])
        await row.locator("button.assign").click()
        await page.locator("#notice", has_text="now chatting with Helen Brooks").wait_for()
        await _until(lambda: "You're now chatting with Helen Brooks" in texts(
            connector.to(jordan.user.conversation_id)), "the guest's connected card")
        await _until(lambda: "Assigned to you by Local developer" in texts(
            connector.to(helen.user.conversation_id)), "the agent's card")
        await _expect_figure(page, "hr", "connected", "1")
        await jordan.say("Can I work 4 days a week?")
        # another guest waits in HR a while: the README's screenshot shows a busy morning
        morgan = Chat(teams.TeamsUser.make("Morgan Lee"), server, connector)
        await _to_hr_waiting(morgan, "My parental leave dates changed")
        server.clock.advance(95)
        await _expect_figure(page, "hr", "waiting", "1")
        await page.locator('.dept[data-tenant="hr"] table.waiting .waited',
                           has_text="1 min").wait_for()
        await page.screenshot(path=str(SCREENSHOT), full_page=True)

        # the chat's page: every hop's transcript, the six keys, the timeline
        await page.locator('.dept[data-tenant="hr"] table.connected a.guest').click()
        await page.locator("#chat-transcript .line").first.wait_for()
        transcript = await page.locator("#chat-transcript").inner_text()
        assert "Service Desk" in transcript and "HR" in transcript
        assert "A question about my contract hours" in transcript
        assert "Can I work 4 days a week?" in transcript
        assert "Session.TransferredFrom.TenantName" in await page.locator(
            "#chat-transferred").inner_text()
        timeline = await page.locator("#chat-timeline").inner_text()
        for event in ("started", "transferred", "offered", "accepted"):
            assert event in timeline, timeline

        # force-close it, with a reason the guest is told
        await page.locator("#chat-actions .close-reason").fill("Handled by phone")
        await page.locator("#chat-actions button.force-close").click()
        await page.locator("#notice", has_text="The chat was closed").wait_for()
        await _until(lambda: "A supervisor closed this chat: Handled by phone" in texts(
            connector.to(jordan.user.conversation_id)), "the guest told why")
        assert "Handled by phone" in texts(connector.to(helen.user.conversation_id))
        await page.locator("#chat-title", has_text="ended").wait_for()

        # transfer Casey (in IT's pipeline) to Legal
        casey_session = await server.app[SESSIONS].live(casey.user.conversation_id)
        await page.evaluate(f"location.hash = '#chat/it/{casey_session.id}'")
        await page.locator("#chat-title", has_text="IT").wait_for()
        await page.locator("#chat-actions select.transfer-target").select_option("legal")
        await page.locator("#chat-actions button.transfer").click()
        await page.locator("#notice", has_text="transferred to Legal").wait_for()
        moved = await server.app[SESSIONS].live(casey.user.conversation_id)
        assert moved.tenant_id == "legal"
        assert "Is this about a contract?" in texts(connector.to(casey.user.conversation_id))
        await page.evaluate("location.hash = ''")

        # the figures for a date range: the last 7 days hold this morning's 4 chats; days
        # long past hold none, while the live counts keep moving; the last hour has them all
        await _expect_figure(page, "service-desk", "started", "4")
        await page.locator("input[name=range][value=dates]").check()
        await page.locator("#range-note", has_text=" to ").wait_for()
        await _expect_figure(page, "service-desk", "started", "4")
        await page.locator("#range-from").fill("2020-01-01")
        await page.locator("#range-to").fill("2020-01-02")
        await page.locator("#range-apply").click()
        await page.locator("#range-note", has_text="2020-01-01 to 2020-01-02").wait_for()
        await _expect_figure(page, "service-desk", "started", "0")
        assert await _figure(page, "hr", "waiting") == "1"
        in_pipeline = int(await _figure(page, "service-desk", "pipeline"))
        riley = Chat(teams.TeamsUser.make("Riley Late"), server, connector)
        await riley.say("hi")
        await _expect_figure(page, "service-desk", "pipeline", str(in_pipeline + 1))
        assert await _figure(page, "service-desk", "started") == "0"
        await page.locator("#range-from").fill("2020-01-03")
        await page.locator("#range-to").fill("2020-01-01")
        await page.locator("#range-apply").click()
        await page.locator("#notice", has_text="starts after it ends").wait_for()
        await _expect_figure(page, "service-desk", "started", "\u2013")
        await page.locator("input[name=range][value=hour]").check()
        await _expect_figure(page, "service-desk", "started", "5")

        # search by a word Jordan typed (his chat is closed now: found once folded)
        await page.locator("#tab-search").click()
        await page.locator("#search-text").fill("contract")

        async def found() -> bool:
            await page.locator("#search-go").click()
            await page.wait_for_timeout(300)
            return "Jordan Rivera" in await page.locator("#search-results").inner_text()

        for _ in range(30):
            if await found():
                break
        else:
            raise AssertionError("search never found Jordan's chat")

        # reports: the chart is drawn, the CSV downloads
        await page.locator("#tab-reports").click()
        await page.locator("#report-table tbody tr").first.wait_for()
        assert await page.evaluate(
            "Chart.getChart(document.getElementById('report-chart')) !== undefined")
        async with page.expect_download() as download:
            await page.locator("#csv-days").click()
        saved = tmp_path / "days.csv"
        await (await download.value).save_as(saved)
        lines = saved.read_text().splitlines()
        assert lines[0].startswith("day,department,started,received,deflected")
        assert any(",HR," in line for line in lines[1:])
        # the one answer the browser reports is the reversed range's 400
        assert tab.errors == ["Failed to load resource: the server responded with a status "
                              "of 400 (Bad Request)"], tab.errors


@pytest.fixture(scope="module")
def identity(tmp_path_factory):
    server = ConsoleIdentity(tmp_path_factory.mktemp("browser-identity")).start()
    yield server
    server.stop()


async def test_a_supervisor_of_hr_cannot_see_or_act_on_an_it_chat(tmp_path, identity,
                                                                  monkeypatch, connector):
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(identity.cert_path))
    clock = FakeClock()
    settings = settings_for(tmp_path, config_path=str(console_config(tmp_path)),
                            **sign_in_settings(identity))
    server = await BotServer(settings, clock=clock).start()
    # Entra sends the browser back to the console's public address: here, the test's port
    server.app[CONSOLE].auth.base_url = server.url
    try:
        desk = Desk(server, connector, clock)
        await desk.agent(ALICE)
        it_guest = await waiting_guest(desk, "My screen is black")
        it_chat = await desk.session(it_guest)
        identity.signs_in = HR_SUPERVISOR
        async with chromium() as browser:
            context = await new_context(browser, ignore_https_errors=True)
            tab = await open_tab(context, server.url + "/console/")
            page = tab.page
            await page.locator("#who", has_text="Hana Supervisor").wait_for()
            await page.locator('.dept[data-tenant="hr"]').wait_for()
            assert await page.locator('.dept[data-tenant="it"]').count() == 0
            assert "Gina Guest" not in await page.locator("#departments").inner_text()
            await page.evaluate(f"location.hash = '#chat/it/{it_chat.id}'")
            await page.locator("#notice", has_text="no such chat").wait_for()
            assert await page.locator("#chat").is_hidden()
            # the page's own script, with the CSRF token, still cannot act on it
            status = await page.evaluate(
                """async (id) => (await fetch(`/console/api/chats/it/${id}/close`, {
                     method: "POST", headers: {"Content-Type": "application/json",
                     "X-CSRF-Token": state.me.csrf}, body: JSON.stringify({reason: "x"})
                   })).status""", it_chat.id)
            assert status == 404
            assert [e for e in tab.errors if "404" not in e] == [], tab.errors
        after = await server.app[SESSIONS].get("it", it_chat.id)
        assert after.state.value == "open"
    finally:
        await server.stop()
