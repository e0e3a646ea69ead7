"""Each pipeline action through `enter` / `receive`, with an in-process StageContext.

The config is the real loader's output for `tests/configs/actions.yaml`; the context is
`tests.fakes.FakeContext`, which records what the guest would see.
"""

from __future__ import annotations

import time

import pytest

from cards.builders import chosen_card
from pipelines.actions import end, get_action, menu, message, question, registry, tenant_transfer
from pipelines.actions.base import Action, Close, Goto, GuestInput, Transfer, Wait
from storage.models import SessionState
from tests.fakes import FakeContext, load_fixture

CONFIG = load_fixture("actions.yaml")


@pytest.fixture
def ctx() -> FakeContext:
    return FakeContext(CONFIG)


def button(title: str, verb: str, stage: str, **more: str) -> dict:
    return {
        "type": "Action.Submit",
        "title": title,
        "data": {"switchboard": {"verb": verb, "session": "s-1", "stage": stage, **more}},
    }


# --------------------------------------------------------------------------- registry


def test_registry_finds_exactly_the_actions() -> None:
    found = registry()
    assert sorted(found) == [
        "business_hours", "condition", "connect_to_agent", "end", "faq", "feedback",
        "http_request", "menu",
        "message", "question", "set_metadata", "tenant_transfer",
    ]
    assert found["end"] is end.ACTION
    assert found["menu"] is menu.ACTION
    assert found["message"] is message.ACTION
    assert found["question"] is question.ACTION
    assert found["tenant_transfer"] is tenant_transfer.ACTION
    for name, action in found.items():
        assert isinstance(action, Action)
        assert action.name == name
        # a stage's `action:` value selects the action's own settings model
        assert action.settings.model_fields["action"].default == name


def test_get_action_unknown_name_raises_key_error() -> None:
    assert get_action("menu") is menu.ACTION
    with pytest.raises(KeyError):
        get_action("base")
    with pytest.raises(KeyError):
        get_action("mesage")


# --------------------------------------------------------------------------- message


async def test_message_sends_the_bound_template_and_goes_next(ctx: FakeContext) -> None:
    outcome = await ctx.enter("hello")
    assert outcome == Goto("need")
    assert ctx.sent == [
        (
            "card",
            {
                "type": "AdaptiveCard",
                "version": "1.5",
                "body": [
                    {"type": "TextBlock", "text": "Hello Ada, this is Front Desk.", "wrap": True}
                ],
            },
        )
    ]


async def test_message_does_not_change_the_loaded_template(ctx: FakeContext) -> None:
    await ctx.enter("hello")
    template = CONFIG.template("front", "main", "hello", "template")
    assert template["body"][0]["text"] == "Hello ${Guest.Name}, this is ${Tenant.Name}."


async def test_message_without_next_waits_and_resends_on_receive(ctx: FakeContext) -> None:
    ctx.set_metadata("Answers.Need", "a new badge")
    assert await ctx.enter("echo") == Wait()
    assert len(ctx.cards) == 1
    first = ctx.cards[0]
    assert first["body"][0]["text"] == "You asked: a new badge"
    assert first["body"][1]["facts"] == [{"title": "Request", "value": "a new badge"}]
    # later guest text: the card again, still resting here
    assert await ctx.receive("echo", "hello?") == Wait()
    assert ctx.sent == [("card", first), ("card", first)]


# --------------------------------------------------------------------------- question


async def test_question_asks_with_a_card(ctx: FakeContext) -> None:
    assert await ctx.enter("need") == Wait()
    assert ctx.texts == []
    assert ctx.cards == [
        {
            "type": "AdaptiveCard",
            "version": "1.5",
            "body": [
                {"type": "TextBlock", "text": "What do you need, Ada?", "wrap": True},
                {
                    "type": "Input.Text",
                    "id": "answer",
                    "isMultiline": False,
                    "isRequired": True,
                    "errorMessage": "Please type an answer.",
                    "placeholder": "e.g. a new laptop",
                },
            ],
            "actions": [button("Send", "answer", "need")],
        }
    ]
    assert "Answers.Need" not in ctx.metadata


async def test_question_card_uses_action_execute_when_asked() -> None:
    ctx = FakeContext(CONFIG, use_execute=True, session_id="s-9")
    await ctx.enter("need")
    (card,) = ctx.cards
    assert card["actions"] == [
        {
            "type": "Action.Execute",
            "title": "Send",
            "verb": "answer",
            "data": {"switchboard": {"verb": "answer", "session": "s-9", "stage": "need"}},
        }
    ]


async def test_question_with_choices_asks_with_a_choice_set(ctx: FakeContext) -> None:
    await ctx.enter("device")
    (card,) = ctx.cards
    field = card["body"][1]
    assert field["type"] == "Input.ChoiceSet"
    assert field["id"] == "answer"
    assert field["choices"] == [
        {"title": "Laptop", "value": "Laptop"},
        {"title": "Phone", "value": "Phone"},
        {"title": "Printer", "value": "Printer"},
    ]
    assert card["actions"] == [button("Send", "answer", "device")]


async def test_question_asks_in_plain_text(ctx: FakeContext) -> None:
    assert await ctx.enter("short") == Wait()
    assert ctx.sent == [("text", "In ten letters or fewer, Ada?")]


async def test_question_stores_a_typed_answer_and_goes_next(ctx: FakeContext) -> None:
    outcome = await ctx.receive("need", "  My laptop won't start  ")
    assert outcome == Goto("short")
    assert ctx.metadata["Answers.Need"] == "My laptop won't start"
    assert ctx.sent == []


async def test_question_stores_a_card_answer(ctx: FakeContext) -> None:
    guest = GuestInput(
        value={"answer": " VPN drops ", "switchboard": {"verb": "answer"}},
        verb="answer",
        session_id="s-1",
        stage_key="need",
    )
    assert await ctx.receive("need", guest) == Goto("short")
    assert ctx.metadata["Answers.Need"] == "VPN drops"


@pytest.mark.parametrize("answer", ["", "   ", None])
async def test_question_required_refuses_an_empty_answer(ctx: FakeContext, answer) -> None:
    outcome = await ctx.receive("need", GuestInput(text=answer))
    assert outcome == Wait()
    assert "Answers.Need" not in ctx.metadata
    assert ctx.texts == ["This question needs an answer."]
    # and asks again, with the same card
    assert [kind for kind, _ in ctx.sent] == ["text", "card"]
    assert ctx.cards[0]["body"][1]["id"] == "answer"
    assert ctx.cards[0]["actions"] == [button("Send", "answer", "need")]


async def test_question_optional_accepts_an_empty_answer(ctx: FakeContext) -> None:
    assert await ctx.receive("short", "   ") == Goto("device")
    assert ctx.metadata["Answers.Short"] == ""
    assert ctx.sent == []


@pytest.mark.parametrize(
    ("typed", "stored"),
    [("laptop", "Laptop"), ("PHONE", "Phone"), ("  Printer ", "Printer"), ("pHoNe", "Phone")],
)
async def test_question_choices_are_case_insensitive_and_canonical(
    ctx: FakeContext, typed: str, stored: str
) -> None:
    assert await ctx.receive("device", typed) == Goto("employee")
    assert ctx.metadata["Answers.Device"] == stored


@pytest.mark.parametrize("typed", ["Tablet", "Lap", "Laptop Phone", "1"])
async def test_question_choices_refuse_other_answers(ctx: FakeContext, typed: str) -> None:
    assert await ctx.receive("device", typed) == Wait()
    assert "Answers.Device" not in ctx.metadata
    assert ctx.texts == ["Please answer with one of: Laptop, Phone, Printer."]
    assert [kind for kind, _ in ctx.sent] == ["text", "card"]
    assert ctx.cards[0]["body"][1]["type"] == "Input.ChoiceSet"


@pytest.mark.parametrize("typed", ["E12345", "e00001"])
async def test_question_pattern_accepts_a_full_match(ctx: FakeContext, typed: str) -> None:
    assert await ctx.receive("employee", typed) == Goto("code")
    assert ctx.metadata["Answers.Employee"] == typed


@pytest.mark.parametrize("typed", ["12345", "E1234", "E123456", "xE12345", "E12345 please"])
async def test_question_pattern_refuses_with_the_hint(ctx: FakeContext, typed: str) -> None:
    assert await ctx.receive("employee", typed) == Wait()
    assert "Answers.Employee" not in ctx.metadata
    assert ctx.texts == ["That doesn't look right: please enter an employee number like E12345."]
    assert [kind for kind, _ in ctx.sent] == ["text", "card"]


async def test_question_pattern_without_hint_says_expected_format(ctx: FakeContext) -> None:
    assert await ctx.receive("code", "12a") == Wait()
    assert ctx.texts == ["That answer isn't in the form this question expects. Please try again."]
    assert await ctx.receive("code", "0042") == Goto("hostile")
    assert ctx.metadata["Answers.Code"] == "0042"


async def test_question_max_length(ctx: FakeContext) -> None:
    # `short` asks in text, so it asks again in text
    assert await ctx.receive("short", "abcdefghijk") == Wait()
    assert ctx.sent == [
        ("text", "Please keep the answer under 10 characters."),
        ("text", "In ten letters or fewer, Ada?"),
    ]
    assert "Answers.Short" not in ctx.metadata
    ctx.clear()
    assert await ctx.receive("short", "abcdefghij") == Goto("device")
    assert ctx.metadata["Answers.Short"] == "abcdefghij"


async def test_question_default_max_length_is_1000(ctx: FakeContext) -> None:
    assert await ctx.receive("need", "x" * 1001) == Wait()
    assert ctx.texts == ["Please keep the answer under 1000 characters."]
    ctx.clear()
    assert await ctx.receive("need", "x" * 1000) == Goto("short")


async def test_question_catastrophic_pattern_times_out_as_invalid(ctx: FakeContext) -> None:
    hostile = "a" * 5000 + "!"
    started = time.perf_counter()
    outcome = await ctx.receive("hostile", hostile)
    elapsed = time.perf_counter() - started
    assert outcome == Wait()
    assert elapsed < 3, f"the pattern ran for {elapsed:.1f} s"
    assert "Answers.Letters" not in ctx.metadata
    assert ctx.texts == ["That answer isn't in the form this question expects. Please try again."]
    # an answer the pattern matches is still accepted
    ctx.clear()
    assert await ctx.receive("hostile", "aaaa") == Goto("dept")
    assert ctx.metadata["Answers.Letters"] == "aaaa"


@pytest.mark.parametrize(
    "typed", ["${Guest.Name}", "${Answers.Need}", "Hi ${Tenant.Name}!", "${", "${1 +}"]
)
async def test_question_stores_template_syntax_as_literal_text(
    ctx: FakeContext, typed: str
) -> None:
    assert await ctx.receive("need", typed) == Goto("short")
    assert ctx.metadata["Answers.Need"] == typed
    # a later card that binds the answer shows exactly what was typed
    assert await ctx.enter("echo") == Wait()
    (card,) = ctx.cards
    assert card["body"][0]["text"] == f"You asked: {typed}"
    assert card["body"][1]["facts"] == [{"title": "Request", "value": typed}]


async def test_question_card_answer_with_template_syntax_is_literal(ctx: FakeContext) -> None:
    guest = GuestInput(value={"answer": '{"$when": "${false}"} ${Guest.Name}'})
    assert await ctx.receive("need", guest) == Goto("short")
    assert ctx.metadata["Answers.Need"] == '{"$when": "${false}"} ${Guest.Name}'
    await ctx.enter("echo")
    assert ctx.cards[0]["body"][0]["text"] == 'You asked: {"$when": "${false}"} ${Guest.Name}'


async def test_optional_question_card_lets_the_guest_send_nothing(ctx: FakeContext) -> None:
    stage = ctx.stage("short").model_copy(update={"input": "card"})
    await question.ACTION.enter(ctx, stage)
    (card,) = ctx.cards
    assert card["body"][1]["isRequired"] is False


# --------------------------------------------------------------------------- menu


async def test_menu_sends_one_button_per_choice(ctx: FakeContext) -> None:
    assert await ctx.enter("dept") == Wait()
    assert ctx.sent == [
        (
            "card",
            {
                "type": "AdaptiveCard",
                "version": "1.5",
                "body": [{"type": "TextBlock", "text": "Which team, Ada?", "wrap": True}],
                "actions": [
                    button("IT Support", "choose", "dept", choice="it"),
                    button("People & HR", "choose", "dept", choice="people"),
                    button("Legal", "choose", "dept", choice="law"),
                ],
            },
        )
    ]


async def test_menu_with_many_choices_stacks_one_button_each(ctx: FakeContext) -> None:
    await ctx.enter("quick")
    (card,) = ctx.cards
    assert "actions" not in card
    assert card["body"][0]["text"] == "Quick pick"
    sets = card["body"][1:]
    assert [s["type"] for s in sets] == ["ActionSet"] * 6
    assert [s["actions"] for s in sets] == [
        [button(title, "choose", "quick", choice=f"c{n}")]
        for n, title in enumerate(["One", "Two", "Three", "Four", "Five", "Six"], start=1)
    ]


async def test_menu_button_press_goes_to_the_choice(ctx: FakeContext) -> None:
    guest = GuestInput(verb="choose", session_id="s-1", stage_key="dept", choice="people")
    assert await ctx.receive("dept", guest) == Goto("quick")
    assert ctx.metadata["Answers.Department"] == "People & HR"
    assert ctx.sent == []
    assert ctx.replace_card is None


@pytest.mark.parametrize(
    ("typed", "target", "title"),
    [
        ("IT Support", "to_back", "IT Support"),
        ("it support", "to_back", "IT Support"),
        ("  LEGAL ", "echo", "Legal"),
        ("people & hr", "quick", "People & HR"),
        ("it", "to_back", "IT Support"),
        ("LAW", "echo", "Legal"),
        ("1", "to_back", "IT Support"),
        ("2", "quick", "People & HR"),
        ("3", "echo", "Legal"),
    ],
)
async def test_menu_accepts_typed_title_id_or_number(
    ctx: FakeContext, typed: str, target: str, title: str
) -> None:
    assert await ctx.receive("dept", typed) == Goto(target)
    assert ctx.metadata["Answers.Department"] == title
    assert ctx.sent == []


@pytest.mark.parametrize(
    "guest",
    [
        GuestInput(text="0"),
        GuestInput(text="4"),
        GuestInput(text="Legal please"),
        GuestInput(text=""),
        GuestInput(text=None),
        GuestInput(choice="nope"),
        # a pressed button's id is matched exactly, not by title
        GuestInput(choice="Legal"),
    ],
)
async def test_menu_refuses_other_input_and_resends(ctx: FakeContext, guest) -> None:
    assert await ctx.receive("dept", guest) == Wait()
    assert "Answers.Department" not in ctx.metadata
    assert ctx.replace_card is None
    assert ctx.sent[0] == (
        "text",
        "Please pick one of the options: IT Support, People & HR, Legal.",
    )
    assert len(ctx.sent) == 2
    kind, card = ctx.sent[1]
    assert kind == "card"
    assert card["actions"] == [
        button("IT Support", "choose", "dept", choice="it"),
        button("People & HR", "choose", "dept", choice="people"),
        button("Legal", "choose", "dept", choice="law"),
    ]


async def test_menu_without_store_as_stores_nothing(ctx: FakeContext) -> None:
    before = dict(ctx.metadata)
    assert await ctx.receive("quick", GuestInput(choice="c6")) == Goto("bye")
    assert ctx.metadata == before


async def test_menu_action_execute_replaces_the_pressed_card() -> None:
    ctx = FakeContext(CONFIG, use_execute=True)
    guest = GuestInput(verb="choose", session_id="s-1", stage_key="dept", choice="law",
                       invoke=True)
    assert await ctx.receive("dept", guest) == Goto("echo")
    assert ctx.replace_card == chosen_card("Which team, Ada?", "Legal")
    assert ctx.replace_card == {
        "type": "AdaptiveCard",
        "version": "1.5",
        "body": [
            {"type": "TextBlock", "text": "Which team, Ada?", "wrap": True, "isSubtle": True},
            {
                "type": "RichTextBlock",
                "inlines": [{"type": "TextRun", "text": "\u2714 Legal", "weight": "Bolder"}],
            },
        ],
    }
    assert ctx.sent == []


async def test_menu_submit_does_not_replace_the_card() -> None:
    ctx = FakeContext(CONFIG, use_execute=True)
    assert await ctx.receive("dept", GuestInput(choice="law", invoke=False)) == Goto("echo")
    assert ctx.replace_card is None


async def test_menu_execute_buttons() -> None:
    ctx = FakeContext(CONFIG, use_execute=True)
    await ctx.enter("dept")
    (card,) = ctx.cards
    assert card["actions"][0] == {
        "type": "Action.Execute",
        "title": "IT Support",
        "verb": "choose",
        "data": {"switchboard": {"verb": "choose", "session": "s-1", "stage": "dept",
                                 "choice": "it"}},
    }


# --------------------------------------------------------------------------- tenant_transfer


async def test_tenant_transfer_returns_transfer_with_hop_limit_stage(ctx: FakeContext) -> None:
    outcome = await ctx.enter("to_back")
    assert outcome == Transfer("back", "template", "done")
    assert ctx.sent == []


async def test_tenant_transfer_without_on_hop_limit(ctx: FakeContext) -> None:
    assert await ctx.enter("to_back_plain") == Transfer("back", "template", None)
    assert ctx.sent == []


async def test_tenant_transfer_template_is_the_builtin_by_default(ctx: FakeContext) -> None:
    stage = ctx.stage("to_back_plain")
    assert stage.template == "builtin:transfer"
    template = ctx.template(stage, "template")
    assert template["type"] == "AdaptiveCard"
    card = ctx.bind(template)
    assert card["body"][1]["text"] == "Moving you to the team that can help."


# --------------------------------------------------------------------------- end


async def test_end_closes_with_the_bound_card(ctx: FakeContext) -> None:
    ctx.set_metadata("Answers.Department", "Legal")
    outcome = await ctx.enter("done")
    assert outcome == Close(
        SessionState.RESOLVED,
        {
            "type": "AdaptiveCard",
            "version": "1.5",
            "body": [
                {"type": "TextBlock", "text": "All done, Ada.", "wrap": True},
                {"type": "TextBlock", "text": "Team: Legal", "wrap": True},
            ],
        },
    )
    # the engine sends the closing card, not the action
    assert ctx.sent == []


async def test_end_card_drops_elements_whose_when_is_false(ctx: FakeContext) -> None:
    outcome = await ctx.enter("done")
    assert isinstance(outcome, Close)
    assert outcome.card is not None
    assert outcome.card["body"] == [{"type": "TextBlock", "text": "All done, Ada.", "wrap": True}]


async def test_end_without_template_closes_with_no_card(ctx: FakeContext) -> None:
    assert await ctx.enter("bye") == Close(SessionState.ENDED, None)
    assert ctx.sent == []


async def test_end_receive_closes_too(ctx: FakeContext) -> None:
    assert await ctx.receive("bye", "anyone there?") == Close(SessionState.ENDED, None)
