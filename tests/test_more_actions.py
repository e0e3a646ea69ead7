"""faq, business_hours, feedback, condition and set_metadata through `enter` / `receive`.

The config is the real loader's output for `tests/configs/more_actions.yaml` (its knowledge
base is `tests/configs/kb/small.yaml`); the context is `tests.fakes.FakeContext`.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from cards.schema import validate_card
from cards.text import card_text
from pipelines.actions.base import Close, Goto, GuestInput, Wait
from pipelines.actions.feedback import parse_rating, read_feedback
from storage.models import SessionState
from tests.fakes import FakeContext, load_fixture

CONFIG = load_fixture("more_actions.yaml")
# matches two articles of tests/configs/kb/small.yaml: vpn, then vpn-slow
VPN = "remote access vpn slow"


def ctx(**metadata) -> FakeContext:
    return FakeContext(CONFIG, metadata=metadata)


def press(verb: str, stage: str, invoke: bool = False, **fields) -> GuestInput:
    choice = fields.pop("choice", None)
    value = {"switchboard": {"verb": verb, "session": "s-1", "stage": stage}, **fields}
    if choice is not None:
        value["switchboard"]["choice"] = choice
    return GuestInput(value=value, verb=verb, session_id="s-1", stage_key=stage, choice=choice,
                      invoke=invoke)


def buttons(card: dict) -> list[str]:
    found = []

    def walk(node):
        if isinstance(node, dict):
            if str(node.get("type", "")).startswith("Action."):
                found.append(node["title"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(card)
    return found


# --------------------------------------------------------------------------- faq


async def test_faq_shows_the_best_articles_with_their_answers_and_links() -> None:
    c = ctx(**{"Answers.Need": VPN})
    outcome = await c.enter("faq")
    assert outcome == Wait()
    [card] = c.cards
    assert validate_card(card) == []
    shown = card_text(card)
    assert shown.startswith("These articles may answer your question:")
    # max_results: 2, best first
    assert c.metadata["Faq.Suggested"] == "vpn,vpn-slow"
    assert shown.index("Connect to the VPN") < shown.index("The VPN is slow")
    assert "Reset your password" not in shown
    assert buttons(card) == ["This solved it", "Read the article", "This solved it",
                             "I still need help"]
    solved = card["body"][2]["items"][2]["actions"][0]
    assert solved["data"] == {"switchboard": {"verb": "solved", "session": "s-1",
                                              "stage": "faq", "choice": "vpn-slow"}}
    link = card["body"][1]["items"][2]["actions"][1]
    assert link == {"type": "Action.OpenUrl", "title": "Read the article",
                    "url": "https://intranet.example.com/vpn"}


async def test_faq_article_text_is_shown_as_written_never_bound() -> None:
    c = ctx(**{"Answers.Need": "paper jam in the printer"})
    await c.enter("faq")
    assert "${Guest.Name} is never bound here." in card_text(c.cards[0])


async def test_faq_without_a_match_or_a_question_goes_straight_on() -> None:
    for metadata in ({"Answers.Need": "where is the canteen"}, {"Answers.Need": "   "}, {}):
        c = ctx(**metadata)
        assert await c.enter("faq") == Goto("tag")
        assert c.sent == [] and "Faq.Suggested" not in c.metadata


async def test_faq_solved_by_a_button_closes_the_session_as_deflected() -> None:
    c = ctx(**{"Answers.Need": VPN})
    await c.enter("faq")
    c.clear()
    outcome = await c.receive("faq", press("solved", "faq", choice="vpn-slow"))
    assert isinstance(outcome, Close) and outcome.state == SessionState.DEFLECTED
    assert card_text(outcome.card) == (
        "Glad that helped, Ada!\n"
        "I've closed this chat. Write again any time you need something else."
    )
    assert c.metadata["Faq.ArticleId"] == "vpn-slow"
    assert c.metadata["Faq.ArticleTitle"] == "The VPN is slow"
    assert c.replace_card is None


async def test_faq_typed_yes_means_the_best_article() -> None:
    for typed in ("yes", "Solved!", "this solved it", "  YES "):
        c = ctx(**{"Answers.Need": VPN})
        await c.enter("faq")
        outcome = await c.receive("faq", typed)
        assert isinstance(outcome, Close), typed
        assert c.metadata["Faq.ArticleId"] == "vpn"


async def test_faq_still_need_help_goes_on() -> None:
    for guest in ("still need help", "No", "I still need help.", press("more", "faq")):
        c = ctx(**{"Answers.Need": VPN})
        await c.enter("faq")
        c.clear()
        assert await c.receive("faq", guest) == Goto("tag")
        assert c.sent == [] and "Faq.ArticleId" not in c.metadata
        assert c.metadata["Faq.Suggested"] == "vpn,vpn-slow"


async def test_faq_anything_else_says_what_to_do_and_shows_the_articles_again() -> None:
    c = ctx(**{"Answers.Need": VPN})
    await c.enter("faq")
    first = c.cards[0]
    c.clear()
    for guest in ("maybe", press("solved", "faq", choice="password")):
        c.clear()
        assert await c.receive("faq", guest) == Wait()
        [hint] = c.texts
        assert "Did one of these articles solve it?" in hint
        assert c.cards == [first]
    assert "Faq.ArticleId" not in c.metadata


async def test_faq_with_action_execute_replaces_the_card() -> None:
    c = FakeContext(CONFIG, metadata={"Answers.Need": VPN}, use_execute=True)
    await c.enter("faq")
    assert {b["type"] for b in c.cards[0]["actions"]} == {"Action.Execute"}
    await c.receive("faq", press("more", "faq", invoke=True))
    assert card_text(c.replace_card) == (
        "These articles may answer your question:\n\u2714 I still need help"
    )
    c = FakeContext(CONFIG, metadata={"Answers.Need": VPN}, use_execute=True)
    await c.enter("faq")
    await c.receive("faq", press("solved", "faq", invoke=True, choice="vpn-slow"))
    assert "\u2714 The VPN is slow" in card_text(c.replace_card)


# --------------------------------------------------------------------------- business hours


async def test_business_hours_open_goes_to_open_and_clears_the_keys() -> None:
    c = ctx(**{"Tenant.NextOpen": "stale", "Tenant.Holiday": "stale"})
    c.clock = datetime(2026, 1, 21, 8, 0, tzinfo=UTC)  # Wednesday 09:00 Paris
    assert await c.enter("hours") == Goto("need")
    assert c.metadata["Tenant.NextOpen"] is None and c.metadata["Tenant.Holiday"] is None
    assert c.sent == []


async def test_business_hours_closed_says_when_it_opens_again() -> None:
    c = ctx()
    c.clock = datetime(2026, 1, 24, 10, 0, tzinfo=UTC)  # Saturday
    assert await c.enter("hours") == Goto("closed")
    assert c.metadata["Tenant.NextOpen"] == "Monday 26 January at 09:00 (Europe/Paris)"
    assert c.metadata["Tenant.NextOpenIso"] == "2026-01-26T09:00:00+01:00"
    assert c.metadata["Tenant.Holiday"] is None
    outcome = await c.enter("closed")
    assert card_text(outcome.card) == (
        "Closed. Open again Monday 26 January at 09:00 (Europe/Paris)."
    )


async def test_business_hours_on_a_holiday_names_it() -> None:
    c = ctx()
    c.clock = datetime(2026, 1, 1, 10, 0, tzinfo=UTC)
    assert await c.enter("hours") == Goto("closed")
    assert c.metadata["Tenant.Holiday"] == "New Year's Day"
    assert c.metadata["Tenant.NextOpen"] == "Friday 2 January at 09:00 (Europe/Paris)"
    c.clock = datetime(2026, 12, 25, 10, 0, tzinfo=UTC)  # a holiday without a name
    await c.enter("hours")
    assert c.metadata["Tenant.Holiday"] == "Holiday"
    assert c.metadata["Tenant.NextOpen"] == "Wednesday 30 December at 09:00 (Europe/Paris)"


async def test_business_hours_at_the_edges_of_lunch() -> None:
    c = ctx()
    c.clock = datetime(2026, 1, 21, 10, 59, 59, tzinfo=UTC)  # Wednesday 11:59:59
    assert await c.enter("hours") == Goto("need")
    c.clock = datetime(2026, 1, 21, 11, 0, tzinfo=UTC)  # 12:00: lunch
    assert await c.enter("hours") == Goto("closed")
    assert c.metadata["Tenant.NextOpen"] == "Wednesday 21 January at 13:00 (Europe/Paris)"


# --------------------------------------------------------------------------- feedback


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("4", (4, None)),
        (" 5 ", (5, None)),
        ("1", (1, None)),
        ("0", (None, "A rating goes from 1 (poor) to 5 (excellent). Please pick one of those.")),
        ("6", (None, "A rating goes from 1 (poor) to 5 (excellent). Please pick one of those.")),
        ("-3", (None, "Please give a whole number from 1 (poor) to 5 (excellent).")),
        ("4.5", (None, "Please give a whole number from 1 (poor) to 5 (excellent).")),
        ("four", (None, "Please rate this chat with a number from 1 (poor) to 5 (excellent).")),
        ("", (None, "Please rate this chat with a number from 1 (poor) to 5 (excellent).")),
        (None, (None, "Please rate this chat with a number from 1 (poor) to 5 (excellent).")),
    ],
)
def test_parse_rating(raw, expected) -> None:
    assert parse_rating(raw) == expected


@pytest.mark.parametrize(
    ("typed", "rating", "comment"),
    [
        ("4", 4, None),
        ("4/5", 4, None),
        ("4 / 5", 4, None),
        ("5 stars", 5, None),
        ("3 out of 5", 3, None),
        ("4 - quick and friendly", 4, "quick and friendly"),
        ("2, took too long", 2, "took too long"),
        ("5. Great!", 5, "Great!"),
        ("5\nGreat", 5, "Great"),
    ],
)
def test_typed_feedback(typed: str, rating: int, comment: str | None) -> None:
    assert read_feedback(GuestInput(text=typed)) == (rating, comment, None)


@pytest.mark.parametrize("typed", ["45", "great", "42 is the answer", "4x"])
def test_typed_feedback_that_is_not_a_rating(typed: str) -> None:
    rating, comment, problem = read_feedback(GuestInput(text=typed))
    assert rating is None and comment is None and problem


async def test_feedback_card_has_choices_a_comment_box_send_and_skip() -> None:
    c = ctx()
    assert await c.enter("after_faq") == Wait()
    [card] = c.cards
    assert validate_card(card) == []
    rating, box = card["body"][1], card["body"][2]
    assert rating["type"] == "Input.ChoiceSet" and rating["id"] == "rating"
    assert [ch["value"] for ch in rating["choices"]] == ["5", "4", "3", "2", "1"]
    assert box["type"] == "Input.Text" and box["id"] == "comment" and box["maxLength"] == 1000
    assert buttons(card) == ["Send", "Skip"]
    assert card["actions"][1]["associatedInputs"] == "none"


async def test_feedback_buttons_style_without_comment_or_skip() -> None:
    c = ctx()
    await c.enter("urgent")
    [card] = c.cards
    assert validate_card(card) == []
    assert buttons(card) == ["1", "2", "3", "4", "5"]
    assert "Input.Text" not in str(card)


async def test_feedback_from_the_card_is_stored_then_thanks() -> None:
    c = ctx()
    outcome = await c.receive("after_faq", press("answer", "after_faq", rating="4",
                                                 comment="  Quick, thanks  "))
    assert outcome == Goto("done")
    assert c.metadata["Feedback.Rating"] == 4
    assert c.metadata["Feedback.Comment"] == "Quick, thanks"
    assert c.texts == ["Thank you for your feedback!"]


async def test_feedback_by_button_with_a_prefix_and_a_bound_thanks() -> None:
    c = ctx()
    outcome = await c.receive("urgent", press("rate", "urgent", choice="2", comment="ignored"))
    assert outcome == Goto("done")
    assert c.metadata["Survey.Rating"] == 2
    # this stage has no comment box
    assert "Survey.Comment" not in c.metadata
    assert c.texts == ["Thanks, Ada."]


async def test_feedback_typed_and_invalid_then_valid() -> None:
    c = ctx()
    assert await c.receive("rate", "9") == Wait()
    assert c.texts == ["A rating goes from 1 (poor) to 5 (excellent). Please pick one of those. "
                       "Or type **skip**."]
    assert len(c.cards) == 1 and "Feedback.Rating" not in c.metadata
    c.clear()
    assert await c.receive("rate", "5 - lovely") == Goto("done")
    assert c.metadata["Feedback.Rating"] == 5 and c.metadata["Feedback.Comment"] == "lovely"
    # `thanks: null`: nothing said
    assert c.sent == []


async def test_feedback_a_comment_too_long_is_refused() -> None:
    c = ctx()
    outcome = await c.receive("rate", press("answer", "rate", rating="3", comment="x" * 21))
    assert outcome == Wait()
    assert c.texts[0].startswith("Please keep the comment under 20 characters.")


async def test_feedback_send_without_a_rating_asks_again() -> None:
    c = ctx()
    assert await c.receive("rate", press("answer", "rate", rating="")) == Wait()
    assert c.texts[0].startswith("Please choose a rating from 1 (poor) to 5 (excellent).")


async def test_feedback_skip_by_button_or_typed() -> None:
    for guest in (press("skip", "rate"), "skip", "No thanks."):
        c = ctx()
        assert await c.receive("rate", guest) == Goto("done")
        assert "Feedback.Rating" not in c.metadata and c.sent == []


async def test_feedback_that_cannot_be_skipped() -> None:
    c = ctx()
    assert await c.receive("urgent", "skip") == Wait()
    assert c.texts == ["Please rate this chat with a number from 1 (poor) to 5 (excellent)."]


async def test_feedback_with_action_execute_replaces_the_card() -> None:
    c = FakeContext(CONFIG, use_execute=True)
    await c.receive("rate", press("answer", "rate", invoke=True, rating="5"))
    assert card_text(c.replace_card).endswith("\u2714 5/5 - Excellent")


# --------------------------------------------------------------------------- set_metadata


async def test_set_metadata_sets_literals_and_bound_values() -> None:
    c = ctx(**{"Answers.Need": "${Guest.Name} {\"$when\": \"${false}\"}", "Session.Hops": 3})
    assert await c.enter("tag") == Goto("route")
    assert c.metadata["Answers.Source"] == "chat"
    assert c.metadata["Answers.Priority"] == 2
    assert c.metadata["Answers.Urgent"] is False
    assert c.metadata["Guest.Greeting"] == "Hi Ada"
    # one `${...}` keeps the value's type
    assert c.metadata["Answers.Count"] == 3
    # what the guest typed is copied as data, never evaluated
    assert c.metadata["Answers.Echo"] == "${Guest.Name} {\"$when\": \"${false}\"}"
    assert c.sent == []


# --------------------------------------------------------------------------- condition


async def test_condition_takes_the_first_true_branch_in_order() -> None:
    c = ctx(**{"Answers.Need": "URGENT: server down", "Answers.Priority": 2,
               "Faq.Suggested": "vpn"})
    assert await c.enter("route") == Goto("urgent")
    c = ctx(**{"Answers.Need": "vpn", "Answers.Priority": 2, "Faq.Suggested": "vpn"})
    assert await c.enter("route") == Goto("after_faq")


async def test_condition_otherwise_and_missing_names() -> None:
    c = ctx(**{"Answers.Need": "vpn", "Answers.Priority": 1, "Faq.Suggested": "vpn"})
    assert await c.enter("route") == Goto("rate")
    # missing metadata is null: no branch is true, nothing raises
    c = ctx()
    assert await c.enter("route") == Goto("rate")
    assert c.sent == []


async def test_condition_takes_a_branch_only_when_it_is_the_boolean_true() -> None:
    """As a card's $when: text, a number or "" is not true (Adaptive Expressions' rules)."""
    from types import SimpleNamespace

    from pipelines.actions.condition import ACTION, Branch, ConditionStage

    stage = ConditionStage(key="c", otherwise="none", branches=[
        Branch(when="Answers.Name", next="text"),
        Branch(when="Answers.Count", next="number"),
        Branch(when="!Answers.Blank", next="not blank"),  # "" is true: !"" is false
        Branch(when="!empty(Answers.Name)", next="named"),
    ])
    metadata = {"Answers.Name": "Ada", "Answers.Count": 3, "Answers.Blank": ""}
    ctx = SimpleNamespace(session=SimpleNamespace(metadata=metadata),
                          tenant=SimpleNamespace(id="it", name="IT"))
    assert await ACTION.enter(ctx, stage) == Goto("named")
    metadata["Answers.Name"] = ""
    assert await ACTION.enter(ctx, stage) == Goto("none")
