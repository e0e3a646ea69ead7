"""Card templates, binding, schema checks, the bot's own cards and the built-in templates."""

import copy
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cards import (
    BUILTIN_TEMPLATES,
    CARD_CONTENT_TYPE,
    MAX_CARD_BYTES,
    TemplateError,
    attachment,
    bind,
    builtin_template,
    card_size,
    card_text,
    check_template,
    chosen_card,
    help_card,
    load_template,
    menu_card,
    parse,
    question_card,
    template_expressions,
    text_card,
    validate_card,
    validate_template,
)

VALUES = {
    "Guest.Name": "Ada",
    "Session.TenantName": "IT",
    "Answers.Count": 3,
    "Answers.Whole": 3.0,
    "Answers.Ratio": 2.5,
    "Answers.Urgent": True,
    "Answers.Tags": ["vpn", "laptop"],
    "Answers.Raw": {"type": "TextBlock", "text": "injected"},
    "Answers.None": None,
}


def card(*body, **extra):
    return {"type": "AdaptiveCard", "version": "1.5", "body": list(body), **extra}


def text(value, **extra):
    return {"type": "TextBlock", "text": value, "wrap": True, **extra}


# ---------------------------------------------------------------------------- bind: values


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("${Guest.Name}", "Ada"),
        ("${Answers.Count}", 3),
        ("${Answers.Whole}", 3.0),
        ("${Answers.Ratio}", 2.5),
        ("${Answers.Urgent}", True),
        ("${Answers.Count > 2}", True),
        ("${Missing.Path}", None),  # no value: left out where it stands alone
        ("${Answers.None}", None),
        ("${Answers.Tags}", "vpn,laptop"),  # only scalars keep their type
        ("${Answers.Raw}", '{"type": "TextBlock", "text": "injected"}'),
        ("${toUpper(Guest.Name)}", "ADA"),
        (" ${Answers.Count}", " 3"),
    ],
)
def test_whole_string_keeps_scalar_type(template, expected):
    result = bind(template, VALUES)
    assert result == expected
    assert type(result) is type(expected)


def test_interpolation_converts_to_text():
    template = (
        "Hi ${Guest.Name} of ${Session.TenantName}: ${Answers.Count} x ${Answers.Whole} "
        "(${Answers.Ratio}, ${Answers.Urgent}, ${!Answers.Urgent}) [${Missing}] ${Answers.Tags}"
    )
    assert bind(template, VALUES) == "Hi Ada of IT: 3 x 3 (2.5, true, false) [] vpn,laptop"


def test_a_scalar_alone_in_a_text_property_is_text_and_keeps_its_type_elsewhere():
    template = card(
        text("${Answers.Count}"),
        {"type": "FactSet", "facts": [{"title": "Count", "value": "${Answers.Count}"}]},
        {"type": "Input.Number", "id": "n", "value": "${Answers.Count}"},
        {"type": "Input.Toggle", "id": "t", "title": "x", "value": "${Answers.Urgent}"},
        {"type": "ColumnSet", "columns": [{"type": "Column", "width": "${Answers.Count}"}]},
        text("x", isVisible="${Answers.Urgent}"),
        actions=[{"type": "Action.Submit", "title": "${Answers.Ratio}",
                  "data": {"n": "${Answers.Count}"}}],
    )
    bound = bind(template, VALUES)
    assert bound["body"][0]["text"] == "3"
    assert bound["body"][1]["facts"][0]["value"] == "3"
    assert bound["body"][2]["value"] == 3
    assert bound["body"][3]["value"] == "true"  # Input.Toggle's value is text
    assert bound["body"][4]["columns"][0]["width"] == 3  # text or a number: kept
    assert bound["body"][5]["isVisible"] is True
    assert bound["actions"][0]["title"] == "2.5" and bound["actions"][0]["data"] == {"n": 3}
    assert validate_card(bound) == []


def test_braces_inside_quoted_strings_do_not_end_the_expression():
    values = {"X": "a}b"}
    assert bind("${contains(X, '}')}!", values) == "true!"
    assert bind("${X == 'a}b'}", values) is True


def test_strings_without_bindings_and_other_scalars_are_kept():
    template = card(text("plain $ { } text"), {"type": "Image", "url": "https://x/y.png"})
    template["body"][0]["maxLines"] = 2
    template["rtl"] = None
    assert bind(template, VALUES) == template


def test_keys_are_never_bound():
    assert bind({"${Guest.Name}": "${Guest.Name}"}, VALUES) == {"${Guest.Name}": "Ada"}


def test_nested_template_binds_everywhere():
    template = card(
        {
            "type": "Container",
            "items": [
                {"type": "ColumnSet", "columns": [
                    {"type": "Column", "items": [text("Name: ${Guest.Name}")]},
                ]},
                {"type": "FactSet", "facts": [{"title": "Team", "value": "${Session.TenantName}"}]},
            ],
        },
        actions=[{"type": "Action.Submit", "title": "Ask ${Session.TenantName}",
                  "data": {"who": "${Guest.Name}", "n": "${Answers.Count}"}}],
    )
    bound = bind(template, VALUES)
    container = bound["body"][0]
    assert container["items"][0]["columns"][0]["items"][0]["text"] == "Name: Ada"
    assert container["items"][1]["facts"] == [{"title": "Team", "value": "IT"}]
    assert bound["actions"][0] == {"type": "Action.Submit", "title": "Ask IT",
                                   "data": {"who": "Ada", "n": 3}}
    assert validate_card(bound) == []


def test_bind_never_mutates_the_template():
    template = card(text("${Guest.Name}", **{"$when": "${exists(Guest.Name)}"}),
                    text("gone", **{"$when": "${false}"}))
    before = copy.deepcopy(template)
    bound = bind(template, VALUES)
    assert template == before
    bound["body"][0]["text"] = "changed"
    bound["body"].append("more")
    assert template == before
    assert bound["body"][0] is not template["body"][0]


# ---------------------------------------------------------------------------- bind: $when


def test_when_drops_list_items_and_removes_the_key():
    template = card(
        text("always"),
        text("Hi ${Guest.Name}", **{"$when": "${exists(Guest.Name)}"}),
        text("no name", **{"$when": "${!exists(Guest.Name)}"}),
        text("urgent", **{"$when": "${Answers.Urgent && Answers.Count >= 3}"}),
    )
    assert bind(template, VALUES)["body"] == [text("always"), text("Hi Ada"), text("urgent")]
    assert bind(template, {})["body"] == [text("always"), text("no name")]


def test_when_on_a_property_object_leaves_it_null_as_microsoft_does():
    """The load-time check refuses this template; bound anyway, it is what Microsoft's engine
    makes of it."""
    template = card(
        {"type": "Image", "url": "https://x/y.png",
         "selectAction": {"$when": "${exists(Missing)}", "type": "Action.OpenUrl",
                          "url": "https://x"}},
    )
    assert bind(template, VALUES)["body"] == [
        {"type": "Image", "url": "https://x/y.png", "selectAction": None}]
    assert any("leaves the property null" in p
               for p in check_template(template, {"Missing"}.__contains__))


def test_when_on_root():
    template = {"$when": "${exists(Guest.Name)}", "type": "AdaptiveCard", "version": "1.5",
                "body": [text("${Guest.Name}")]}
    assert bind(template, {}) is None
    assert bind(template, VALUES) == card(text("Ada"))


def test_when_nests():
    template = card({"type": "Container", "$when": "${exists(Guest.Name)}", "items": [
        text("a", **{"$when": "${!exists(Guest.Name)}"}),
        {"type": "Container", "$when": "${true == true}", "items": [
            text("b", **{"$when": "${Answers.Count == 3}"}),
            text("c", **{"$when": "${Answers.Count == 4}"}),
        ]},
    ]})
    assert bind(template, VALUES)["body"] == [{"type": "Container", "items": [
        {"type": "Container", "items": [text("b")]},
    ]}]


def test_a_when_that_is_not_one_expression_follows_microsoft():
    """JSON true, a non-empty text or `${true}` (a lone literal is text there) drop the
    element; JSON false and "" keep it. The load-time check refuses all of them."""
    template = card(*(text(str(i), **{"$when": w}) for i, w in enumerate(
        [True, False, "yes", "", "${true}", "${Answers.Urgent} ", 0, 1, None])))
    assert [b["text"] for b in bind(template, VALUES)["body"]] == ["1", "3", "6", "8"]
    assert len(check_template(template, VALUES.__contains__)) == 9


def test_when_keeps_only_true():
    for value in (None, "", 0, 1, False, [], "0", "true", "x"):
        assert bind([{"$when": "${X}", "k": 1}], {"X": value}) == []
    assert bind([{"$when": "${X}", "k": 1}], {"X": True}) == [{"k": 1}]


# ---------------------------------------------------------------------------- guest text is data


@pytest.mark.parametrize(
    "answer",
    [
        "${Guest.Name}",
        '{"$when": "${false}"}',
        "${exists(x)}",
        "${",
        "}${}",
        "${__import__('os').system('id')}",
    ],
)
def test_guest_text_is_never_evaluated(answer):
    values = {**VALUES, "Answers.Issue": answer}
    template = card(
        text("You wrote: ${Answers.Issue}"),
        text("${Answers.Issue}"),
        {"type": "FactSet", "facts": [{"title": "Issue", "value": "${Answers.Issue}"}]},
    )
    bound = bind(template, values)
    assert bound["body"][0]["text"] == f"You wrote: {answer}"
    assert bound["body"][1]["text"] == answer
    assert bound["body"][2]["facts"][0]["value"] == answer
    assert validate_card(bound) == []


def test_guest_text_that_looks_like_when_json_adds_no_structure():
    values = {"Answers.Issue": '{"$when": "${false}"}'}
    bound = bind(card(text("${Answers.Issue}")), values)
    assert bound == card(text('{"$when": "${false}"}'))


@given(st.text(max_size=80))
def test_any_guest_text_round_trips(answer):
    values = {"Answers.Issue": answer}
    assert bind("${Answers.Issue}", values) == answer
    assert bind("<${Answers.Issue}>", values) == f"<{answer}>"


# ---------------------------------------------------------------------------- template errors


@pytest.mark.parametrize(
    ("template", "message"),
    [
        (card(text("Hi ${Guest.Name")),
         "$.body[0].text: '${' at column 4 has no closing '}'"),
        (card(text("${Guest.Name ==}")),
         "$.body[0].text: bad expression ${Guest.Name ==}: expected a value, found end of "
         "expression (column 14 of the expression)"),
        (card(text("${eval('1')}")),
         "$.body[0].text: bad expression ${eval('1')}: unknown function 'eval' (known: contains, "
         "empty, exists, not, toLower, toUpper) (column 1 of the expression)"),
        (card(text("${lower(Guest.Name)}")),
         "$.body[0].text: bad expression ${lower(Guest.Name)}: Adaptive Card templating calls "
         "it toLower(), not lower() (column 1 of the expression)"),
        ({"odd key": ["${}"]}, "$['odd key'][0]: empty ${} at column 1"),
    ],
)
def test_bind_and_template_expressions_report_location(template, message):
    with pytest.raises(TemplateError) as info:
        bind(template, VALUES)
    assert str(info.value) == message
    with pytest.raises(TemplateError) as info:
        template_expressions(template)
    assert str(info.value) == message


def test_template_expressions_lists_every_binding_with_location():
    template = card(
        text("${Guest.Name} and ${Answers.Count}", **{"$when": "${exists(Guest.Name)}"}),
        actions=[{"type": "Action.Submit", "title": "${Session.TenantName}"}],
    )
    assert template_expressions(template) == [
        ("$.body[0].text", parse("Guest.Name")),
        ("$.body[0].text", parse("Answers.Count")),
        ("$.body[0].$when", parse("exists(Guest.Name)")),
        ("$.actions[0].title", parse("Session.TenantName")),
    ]


def test_check_template_reports_every_problem():
    known = {"Guest.Name", "Session.TenantName"}.__contains__
    template = card(
        text("${Guest.Name} ${Guest.Nmae}", **{"$when": "${exists(Answers.Dept)}"}),
        text("${Guest.Name ==}"),
        {"type": "Container", "$data": "${Answers.Tags}", "items": [text("${Session.TenantName}")]},
    )
    assert check_template(template, known) == [
        "$.body[0].text: unknown metadata name 'Guest.Nmae'",
        "$.body[0].$when: unknown metadata name 'Answers.Dept'",
        "$.body[1].text: bad expression ${Guest.Name ==}: expected a value, found end of "
        "expression (column 14 of the expression)",
        "$.body[2].$data: unknown metadata name 'Answers.Tags'",
        "$.body[2]: '$data' is not supported (only $when and ${...})",
    ]
    assert check_template(card(text("${Guest.Name}")), known) == []


# ---------------------------------------------------------------------------- schema


def test_valid_card_has_no_problems():
    assert validate_card(card(text("hello"))) == []
    assert validate_card({**card(text("old")), "version": "1.2"}) == []
    assert validate_card({**card(text("x")), "version": "1.5.0"}) == []


@pytest.mark.parametrize(
    ("bad", "problems"),
    [
        ({**card(text("x")), "version": "1.6"},
         ["$.version 1.6 is newer than Teams supports (1.5)"]),
        ({**card(text("x")), "version": "1.10"},
         ["$.version 1.10 is newer than Teams supports (1.5)"]),
        ({**card(text("x")), "version": 1.5},
         ["$.version must be a string like '1.5', not 1.5",
          "$.version: 1.5 is not of type 'string'"]),
        ({"type": "AdaptiveCard", "body": []},
         ["$.version must be a string like '1.5', not None"]),
        ({**card(text("x")), "type": "HeroCard"},
         ["$.type must be 'AdaptiveCard', not 'HeroCard'",
          "$: unknown element or action type 'HeroCard'"]),
        (card({"type": "TextBlok", "text": "x"}),
         ["$.body[0]: unknown element or action type 'TextBlok'"]),
        (card({"type": "TextBlock", "wrap": True}),
         ["$.body[0]: 'text' is a required property"]),
        (card({"type": "Input.Text"}), ["$.body[0]: 'id' is a required property"]),
        (card({"text": "no type"}), ["$.body[0]: an element or action needs a 'type'"]),
        (card({"type": "Fact", "title": "a", "value": "b"}),
         ["$.body[0]: Fact is not allowed here"]),
        (card(text("x", color="reddish")),
         ["$.body[0].color: 'reddish' is not one of default, dark, light, accent, good, warning, "
          "attention"]),
        (card({"type": "Container", "items": [text("x", wrap="yes")]}),
         ["$.body[0].items[0].wrap: 'yes' is not of type 'boolean'"]),
        ({**card(text("x")), "msteams": {"width": "Full"}},
         ["$: Additional properties are not allowed ('msteams' was unexpected)"]),
        ({**card(text("x")), "version": "1.3",
          "actions": [{"type": "Action.Execute", "title": "Go"}]},
         ["$.actions[0]: Action.Execute needs card version 1.4 or later"]),
        ("not a card", ["a card must be a JSON object, not str"]),
    ],
)
def test_validate_card_rejects(bad, problems):
    assert validate_card(bad) == problems


def test_validate_card_rejects_cards_over_28_kb():
    big = card(*(text("x" * 1000) for _ in range(29)))
    assert card_size(big) > MAX_CARD_BYTES
    size = card_size(big)
    assert validate_card(big) == [f"the card is {size} bytes; Teams accepts at most 28672"]
    assert validate_card(card(*(text("x" * 1000) for _ in range(27)))) == []


def test_card_size_counts_utf8_bytes_of_compact_json():
    assert card_size({"a": "é"}) == len('{"a":"é"}'.encode())


def test_attachment():
    c = text_card("hi")
    assert attachment(c) == {"contentType": "application/vnd.microsoft.card.adaptive", "content": c}
    assert CARD_CONTENT_TYPE == "application/vnd.microsoft.card.adaptive"


# ---------------------------------------------------------------------------- builders


def test_text_card_shows_text_without_markdown():
    c = text_card("[click](https://evil.example) **${Guest.Name}**", title="Note")
    assert c == {"type": "AdaptiveCard", "version": "1.5", "body": [
        {"type": "TextBlock", "text": "Note", "wrap": True, "style": "heading", "size": "Medium",
         "weight": "Bolder"},
        {"type": "RichTextBlock", "inlines": [
            {"type": "TextRun", "text": "[click](https://evil.example) **${Guest.Name}**"}]},
    ]}
    assert validate_card(c) == []


def test_text_card_style_wraps_in_a_container():
    c = text_card("careful", style="warning")
    assert c["body"] == [{"type": "Container", "style": "warning", "items": [
        {"type": "RichTextBlock", "inlines": [{"type": "TextRun", "text": "careful"}]}]}]
    assert validate_card(c) == []
    with pytest.raises(ValueError, match="style must be one of"):
        text_card("x", style="red")


def test_question_card_text_input_with_submit():
    c = question_card("What broke?", session_id="s1", stage_key="q1", placeholder="Describe it",
                      choices=None, multiline=True, use_execute=False)
    assert c == {"type": "AdaptiveCard", "version": "1.5", "body": [
        {"type": "TextBlock", "text": "What broke?", "wrap": True},
        {"type": "Input.Text", "id": "answer", "isMultiline": True, "isRequired": True,
         "errorMessage": "Please type an answer.", "placeholder": "Describe it"},
    ], "actions": [
        {"type": "Action.Submit", "title": "Send",
         "data": {"switchboard": {"verb": "answer", "session": "s1", "stage": "q1"}}},
    ]}
    assert validate_card(c) == []


def test_question_card_choices_with_execute():
    c = question_card("Which team?", session_id="s1", stage_key="q2", placeholder=None,
                      choices=["IT", "HR"], multiline=False, use_execute=True)
    assert c["body"][1] == {
        "type": "Input.ChoiceSet", "id": "answer", "style": "expanded",
        "choices": [{"title": "IT", "value": "IT"}, {"title": "HR", "value": "HR"}],
        "isRequired": True, "errorMessage": "Please choose one.",
    }
    assert c["actions"] == [{"type": "Action.Execute", "title": "Send", "verb": "answer",
                             "data": {"switchboard": {"verb": "answer", "session": "s1",
                                                      "stage": "q2"}}}]
    assert validate_card(c) == []


@pytest.mark.parametrize("use_execute", [False, True])
def test_menu_card_one_button_per_choice(use_execute):
    c = menu_card("How can we help?", [("pw", "Password"), ("hw", "Hardware")], session_id="s1",
                  stage_key="menu", use_execute=use_execute)
    assert c["body"] == [{"type": "TextBlock", "text": "How can we help?", "wrap": True}]
    kind = "Action.Execute" if use_execute else "Action.Submit"
    for button, (choice, title) in zip(c["actions"], [("pw", "Password"), ("hw", "Hardware")],
                                       strict=True):
        expected = {"type": kind, "title": title, "data": {"switchboard": {
            "verb": "choose", "session": "s1", "stage": "menu", "choice": choice}}}
        if use_execute:
            expected["verb"] = "choose"
        assert button == expected
    assert validate_card(c) == []


def test_long_menu_stacks_buttons_in_the_body():
    choices = [(f"c{i}", f"Choice {i}") for i in range(8)]
    c = menu_card("Pick", choices, session_id="s", stage_key="m", use_execute=False)
    assert "actions" not in c
    assert [e["type"] for e in c["body"]] == ["TextBlock"] + ["ActionSet"] * 8
    assert c["body"][8]["actions"][0]["data"]["switchboard"]["choice"] == "c7"
    assert validate_card(c) == []


def test_chosen_card_has_no_buttons():
    c = chosen_card("How can we help?", "Password")
    assert c == {"type": "AdaptiveCard", "version": "1.5", "body": [
        {"type": "TextBlock", "text": "How can we help?", "wrap": True, "isSubtle": True},
        {"type": "RichTextBlock", "inlines": [
            {"type": "TextRun", "text": "\u2714 Password", "weight": "Bolder"}]},
    ]}
    assert validate_card(c) == []


def test_help_card():
    c = help_card([("help", "show this"), ("agent", "talk to a person")], where="IT: Welcome")
    assert card_text(c) == "Help\nIT: Welcome\nhelp: show this\nagent: talk to a person"
    assert validate_card(c) == []
    empty = help_card([], where=None)
    assert card_text(empty) == "Help\nThere are no commands here."
    assert validate_card(empty) == []


def test_builders_output_is_json():
    for c in (text_card("a"), chosen_card("a", "b"), help_card([], where=None)):
        assert json.loads(json.dumps(c)) == c


# ---------------------------------------------------------------------------- templates

FULL = {
    "Guest.Name": "Ada",
    "Session.Id": "sess-2",
    "Session.TenantName": "HR",
    "Session.TransferredFrom.TenantName": "IT",
    "Session.TransferredTo.TenantName": "HR",
}


@pytest.mark.parametrize(
    ("name", "values", "shown"),
    [
        ("welcome", FULL,
         "Welcome to HR\nHi Ada, a few questions and we will get you to the right person."),
        ("welcome", {},
         "Welcome to the help desk\nHi, a few questions and we will get you to the right person."),
        ("transfer", FULL,
         "You are being transferred\nMoving you from IT to HR.\n"
         "Your answers so far come with you, so you will not have to repeat yourself."),
        ("transfer", {"Session.TransferredTo.TenantName": "HR"},
         "You are being transferred\nMoving you to HR.\n"
         "Your answers so far come with you, so you will not have to repeat yourself."),
        ("transfer", {"Session.TransferredFrom.TenantName": "IT",
                      "Session.TransferredTo.TenantName": ""},
         "You are being transferred\nMoving you to the team that can help.\n"
         "Your answers so far come with you, so you will not have to repeat yourself."),
        ("summary", FULL,
         "Summary\nName: Ada\nTeam: HR\nTransferred from: IT\nReference: sess-2"),
        ("summary", {"Guest.Name": "Ada"}, "Summary\nName: Ada"),
    ],
)
def test_builtin_templates_bind_and_validate(name, values, shown):
    bound = bind(builtin_template(name), values)
    assert card_text(bound) == shown
    assert validate_card(bound) == []
    assert "${" not in json.dumps(bound)


def test_builtin_templates_only_read_known_names():
    known = {
        "Guest.Name", "Session.Id", "Session.TenantName", "Agent.Name",
        "Session.TransferredFrom.TenantName", "Session.TransferredTo.TenantName",
    }
    for name in BUILTIN_TEMPLATES:
        assert check_template(builtin_template(name), known.__contains__) == []
    transfer_paths = {p for _, e in template_expressions(builtin_template("transfer"))
                      for p in e.paths()}
    assert transfer_paths == {"Session.TransferredFrom.TenantName",
                              "Session.TransferredTo.TenantName"}


def test_validate_template_checks_every_when_branch_before_binding():
    for name in BUILTIN_TEMPLATES:
        assert validate_template(builtin_template(name)) == []
    template = card(
        text("${A}", wrap="${B}", maxLines="at most ${C}", **{"$when": "${x}"}),
        {"$when": "${false}", "type": "TextBlok", "text": "hidden today"},
        text("two", wrap="${a} and ${b}"),
    )
    assert validate_template(template) == [
        "$.body[0].maxLines: 'at most ${C}' is not of type 'number'",
        "$.body[1]: unknown element or action type 'TextBlok'",
        "$.body[2].wrap: '${a} and ${b}' is not of type 'boolean'",
    ]


def test_builtin_template_is_a_fresh_copy():
    first = builtin_template("welcome")
    first["body"].clear()
    assert builtin_template("welcome")["body"] != []
    with pytest.raises(KeyError, match="no built-in template 'nope'"):
        builtin_template("nope")


def test_load_template(tmp_path):
    good = tmp_path / "good.json"
    good.write_text(json.dumps(card(text("${Guest.Name}"))), encoding="utf-8")
    assert load_template(good) == card(text("${Guest.Name}"))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON: Expecting property name enclosed in double quotes "
                      "(line 1, column 2)"),
        ("[]", "a card template must be a JSON object, not list"),
        ('{"type": "HeroCard"}', "'type' must be 'AdaptiveCard', not 'HeroCard'"),
    ],
)
def test_load_template_errors_name_the_file(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(TemplateError) as info:
        load_template(path)
    assert str(info.value) == f"{path}: {message}"


def test_load_template_missing_file(tmp_path):
    with pytest.raises(TemplateError, match=r"missing\.json: file not found: check the path"):
        load_template(tmp_path / "missing.json")


def test_card_text_reads_every_kind_of_text():
    c = card(text("a"), {"type": "Container", "items": [
        {"type": "RichTextBlock", "inlines": ["plain ", {"type": "TextRun", "text": "run"}]}]},
        actions=[{"type": "Action.ShowCard", "title": "More",
                  "card": {"type": "AdaptiveCard", "body": [text("inner")]}}])
    assert card_text(c) == "a\nplain run\n[More]\ninner"
