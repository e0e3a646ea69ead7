"""Every mistake an admin can make in the config is found when it loads, clearly.

Each case expects exactly one problem (unless it tests several at once), located by file,
tenant, pipeline and stage, and saying how to fix it. Configs are written inline to `tmp_path`.
"""

from __future__ import annotations

import json
import textwrap
import time
from pathlib import Path

import pytest

from pipelines.loader import MAX_CONFIG_BYTES, ConfigError, load_config

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "helpdesk.yaml"
ACTIONS = (
    "business_hours, condition, connect_to_agent, end, faq, feedback, http_request, menu, "
    "message, question, set_metadata, tenant_transfer"
)

# Two departments: `it` (its pipeline `support` gets the stages under test) and `hr`.
DESK = """\
primary_tenant: it
tenants:
  - id: it
    name: IT
    primary_pipeline: support
    pipelines:
      - id: support
        stages:
{stages}
  - id: hr
    name: HR
    enabled: {hr_enabled}
    primary_pipeline: intake
    pipelines:
      - id: intake
        stages:
          - {{key: done, action: end}}
"""


def desk(*stages: str, hr_enabled: bool = True) -> str:
    """DESK with `stages` (YAML list items, each part dedented on its own) in it/support."""
    text = "\n".join(textwrap.dedent(part).strip("\n") for part in stages)
    body = textwrap.indent(text, " " * 10)
    return DESK.format(stages=body, hr_enabled=str(hr_enabled).lower())


def write(tmp_path: Path, text: str, name: str = "switchboard.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def card_file(tmp_path: Path, name: str, card: object) -> None:
    text = card if isinstance(card, str) else json.dumps(card)
    (tmp_path / name).write_text(text, encoding="utf-8")


def problems(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return info.value.problems


def only_problem(path: Path) -> str:
    found = problems(path)
    assert len(found) == 1, found
    return found[0]


def at(path: Path, tenant: str = "", pipeline: str = "", stage: str = "") -> str:
    """The location prefix of a problem, e.g. `f > tenant 'it' > pipeline 'support': `."""
    where = [str(path)]
    if tenant:
        where.append(f"tenant {tenant!r}")
    if pipeline:
        where.append(f"pipeline {pipeline!r}")
    if stage:
        where.append(f"stage {stage!r}")
    return " > ".join(where) + ": "


def in_stage(path: Path, stage: str) -> str:
    return at(path, "it", "support", stage)


def in_template(path: Path, name: str, message: str, *stages: str,
                setting: str = "template") -> str:
    """A problem of a template file: once, naming the file and the stages that use it."""
    used_by = "; ".join(f"tenant 'it' > pipeline 'support' > stage {s!r} `{setting}`"
                        for s in stages or ("welcome",))
    return f"{path} > template {name}: {message} (used by {used_by})"


# a valid first stage, so the stage under test is never the only one
WELCOME = "- {key: welcome, action: message, template: 'builtin:welcome', next: done}\n"


# --------------------------------------------------------------------------- stages


def test_unknown_action_type(tmp_path: Path) -> None:
    path = write(tmp_path, desk(WELCOME, """
        - {key: done, action: end}
        - {key: oops, action: mesage, template: 'builtin:welcome'}
    """))
    assert only_problem(path) == (
        in_stage(path, "oops") + f"unknown action type 'mesage': use one of {ACTIONS}"
    )


def test_missing_action_type(tmp_path: Path) -> None:
    path = write(tmp_path, desk(WELCOME, """
        - {key: done, action: end}
        - {key: oops}
    """))
    assert only_problem(path) == (
        in_stage(path, "oops") + f"the stage has no `action`: use one of {ACTIONS}"
    )


def test_stage_without_key(tmp_path: Path) -> None:
    path = write(tmp_path, desk(WELCOME, """
        - {key: done, action: end}
        - {action: end}
    """))
    assert only_problem(path) == (
        at(path, "it", "support") + "stages[2] has no `key`: give every stage a unique key"
    )


def test_stage_key_with_bad_characters(tmp_path: Path) -> None:
    path = write(tmp_path, desk(WELCOME, """
        - {key: done, action: end}
        - {key: "two words", action: end}
    """))
    problem = only_problem(path)
    assert problem.startswith(in_stage(path, "two words") + "`key`: String should match pattern")


def test_duplicate_stage_key(tmp_path: Path) -> None:
    path = write(tmp_path, desk(WELCOME, """
        - {key: done, action: end}
        - {key: done, action: end, state: ended}
    """))
    assert only_problem(path) == (
        in_stage(path, "done") + "duplicate stage key: every key must be unique in its pipeline"
    )


def test_same_stage_key_in_two_pipelines_is_fine(tmp_path: Path) -> None:
    # `done` is also the key of hr's stage
    path = write(tmp_path, desk(WELCOME, "- {key: done, action: end}\n"))
    config, warnings = load_config(path)
    assert warnings == []
    assert [s.key for s in config.tenant("it").primary.stages] == ["welcome", "done"]


def test_next_points_nowhere(tmp_path: Path) -> None:
    path = write(tmp_path, desk("""
        - {key: welcome, action: message, template: 'builtin:welcome', next: dnoe}
        - {key: done, action: end}
    """))
    assert only_problem(path) == in_stage(path, "welcome") + (
        "`next` points to 'dnoe', which is not a stage of this pipeline: use one of done, welcome"
    )


def test_next_cannot_point_into_another_pipeline(tmp_path: Path) -> None:
    # hr's pipeline has a `done`; it pipeline does not
    path = write(tmp_path, desk("""
        - {key: welcome, action: message, template: 'builtin:welcome', next: done}
    """))
    assert only_problem(path) == in_stage(path, "welcome") + (
        "`next` points to 'done', which is not a stage of this pipeline: use one of welcome"
    )


def test_menu_choice_points_nowhere(tmp_path: Path) -> None:
    path = write(tmp_path, desk("""
        - key: pick
          action: menu
          prompt: Pick one
          choices:
            - {id: fine, title: Fine, next: done}
            - {id: lost, title: Lost, next: nowhere}
        - {key: done, action: end}
    """))
    assert only_problem(path) == in_stage(path, "pick") + (
        "`choice lost` points to 'nowhere', which is not a stage of this pipeline: "
        "use one of done, pick"
    )


def test_menu_duplicate_choice_ids(tmp_path: Path) -> None:
    path = write(tmp_path, desk(WELCOME, """
        - {key: done, action: end}
        - key: pick
          action: menu
          prompt: Pick one
          choices:
            - {id: a, title: First, next: done}
            - {id: a, title: Second, next: done}
    """))
    assert only_problem(path) == in_stage(path, "pick") + "two choices have the id 'a'"


def test_menu_duplicate_choice_titles_ignore_case(tmp_path: Path) -> None:
    path = write(tmp_path, desk(WELCOME, """
        - {key: done, action: end}
        - key: pick
          action: menu
          prompt: Pick one
          choices:
            - {id: a, title: Laptop, next: done}
            - {id: b, title: LAPTOP, next: done}
    """))
    assert only_problem(path) == in_stage(path, "pick") + "two choices have the title 'LAPTOP'"


def test_on_hop_limit_points_nowhere(tmp_path: Path) -> None:
    path = write(tmp_path, desk("""
        - {key: move, action: tenant_transfer, tenant: hr, on_hop_limit: stay}
        - {key: done, action: end}
    """))
    problem = only_problem(path)
    assert problem == in_stage(path, "move") + (
        "`on_hop_limit` points to 'stay', which is not a stage of this pipeline: "
        "use one of done, move"
    )


# --------------------------------------------------------------------------- transfers


def test_transfer_to_unknown_tenant(tmp_path: Path) -> None:
    path = write(tmp_path, desk("- {key: move, action: tenant_transfer, tenant: legal}"))
    assert only_problem(path) == (
        in_stage(path, "move") + "transfer to unknown tenant 'legal': use one of hr, it"
    )


def test_transfer_to_disabled_tenant(tmp_path: Path) -> None:
    path = write(
        tmp_path, desk("- {key: move, action: tenant_transfer, tenant: hr}", hr_enabled=False)
    )
    assert only_problem(path) == (
        in_stage(path, "move") + "transfer to disabled tenant 'hr': enable it or pick another"
    )


def test_transfer_to_its_own_tenant(tmp_path: Path) -> None:
    path = write(tmp_path, desk("- {key: move, action: tenant_transfer, tenant: it}"))
    assert only_problem(path) == (
        in_stage(path, "move") + "transfer to its own tenant 'it': use `next` to move within it"
    )


def test_transfer_with_next(tmp_path: Path) -> None:
    path = write(tmp_path, desk("""
        - {key: move, action: tenant_transfer, tenant: hr, next: done}
        - {key: done, action: end}
    """))
    assert only_problem(path) == (
        in_stage(path, "move")
        + "`tenant_transfer` cannot have `next`: the target's pipeline runs next"
    )


def test_end_with_next(tmp_path: Path) -> None:
    path = write(tmp_path, desk("- {key: done, action: end, next: done}"))
    assert only_problem(path) == in_stage(path, "done") + "`end` cannot have `next`: remove it"


def test_transfer_to_an_enabled_tenant_loads(tmp_path: Path) -> None:
    path = write(tmp_path, desk("- {key: move, action: tenant_transfer, tenant: hr}"))
    config, warnings = load_config(path)
    assert warnings == []
    assert config.tenant("it").primary.first.tenant == "hr"
    assert "it/support/move/template" in config.templates


# --------------------------------------------------------------------------- templates


def welcome_with(template: str) -> str:
    return desk(f"""
        - {{key: welcome, action: message, template: {template}, next: done}}
        - {{key: done, action: end}}
    """)


def card(*body: dict, version: str = "1.5") -> dict:
    return {"type": "AdaptiveCard", "version": version, "body": list(body)}


def test_template_file_is_not_json(tmp_path: Path) -> None:
    card_file(tmp_path, "broken.json", '{"type": "AdaptiveCard", "body": [}')
    path = write(tmp_path, welcome_with("broken.json"))
    assert only_problem(path) == in_template(
        path, "broken.json", "not valid JSON: Expecting value (line 1, column 35)")


def test_template_file_nested_hostilely_deep_fails_cleanly(tmp_path: Path) -> None:
    path = write(tmp_path, welcome_with("cards/deep.json"))
    deep = tmp_path / "cards" / "deep.json"
    deep.parent.mkdir(exist_ok=True)
    deep.write_text("[" * 100_000 + "]" * 100_000)
    assert only_problem(path) == in_template(
        path, "cards/deep.json", "nested too deeply to be a card")
    deep.write_text('{"type": "AdaptiveCard", "version": "1.5", "body": '
                    + "[" * 300 + "]" * 300 + "}")
    assert only_problem(path) == in_template(
        path, "cards/deep.json", "nested more than 40 levels deep: flatten it")


def test_template_file_is_missing(tmp_path: Path) -> None:
    path = write(tmp_path, welcome_with("cards/missing.json"))
    problem = only_problem(path)
    assert problem == in_template(
        path, "cards/missing.json",
        "file not found: check the path (relative to the config file)")


def test_template_path_is_relative_to_the_config_file(tmp_path: Path) -> None:
    (tmp_path / "cards").mkdir()
    hello = card({"type": "TextBlock", "text": "Hi ${Guest.Name}"})
    card_file(tmp_path, "cards/hello.json", hello)
    path = write(tmp_path, welcome_with("cards/hello.json"))
    config, warnings = load_config(path)
    assert warnings == []
    assert config.template("it", "support", "welcome", "template") == hello


def test_template_that_is_not_an_adaptive_card(tmp_path: Path) -> None:
    card_file(tmp_path, "hero.json", {"type": "HeroCard", "version": "1.5", "body": []})
    path = write(tmp_path, welcome_with("hero.json"))
    assert only_problem(path) == in_template(
        path, "hero.json", "'type' must be 'AdaptiveCard', not 'HeroCard'")


def test_template_that_is_a_json_list(tmp_path: Path) -> None:
    card_file(tmp_path, "list.json", "[]")
    path = write(tmp_path, welcome_with("list.json"))
    assert only_problem(path) == in_template(
        path, "list.json", "a card template must be a JSON object, not list")


def test_template_with_version_1_6(tmp_path: Path) -> None:
    card_file(tmp_path, "new.json", card({"type": "TextBlock", "text": "x"}, version="1.6"))
    path = write(tmp_path, welcome_with("new.json"))
    assert only_problem(path) == in_template(
        path, "new.json", "not a valid Adaptive Card 1.5 once bound: "
        "$.version 1.6 is newer than Teams supports (1.5)")


def test_template_with_an_unknown_element(tmp_path: Path) -> None:
    card_file(tmp_path, "odd.json", card({"type": "Textblock", "text": "x"}))
    path = write(tmp_path, welcome_with("odd.json"))
    assert only_problem(path) == in_template(
        path, "odd.json", "not a valid Adaptive Card 1.5 once bound: "
        "$.body[0]: unknown element or action type 'Textblock'")


def test_template_expression_that_does_not_parse(tmp_path: Path) -> None:
    card_file(
        tmp_path,
        "bad.json",
        card(
            {"type": "TextBlock", "text": "Fine ${Guest.Name}"},
            {"type": "TextBlock", "text": "Hi ${Guest.Name +}"},
        ),
    )
    path = write(tmp_path, welcome_with("bad.json"))
    assert only_problem(path) == in_template(
        path, "bad.json", "$.body[1].text: bad expression ${Guest.Name +}: "
        "unexpected character '+': arithmetic is not supported (column 12 of the expression)")


def test_template_expression_without_closing_brace(tmp_path: Path) -> None:
    card_file(tmp_path, "open.json", card({"type": "TextBlock", "text": "Hi ${Guest.Name"}))
    path = write(tmp_path, welcome_with("open.json"))
    assert only_problem(path) == in_template(
        path, "open.json", "$.body[0].text: '${' at column 4 has no closing '}'")


def test_template_binds_unknown_metadata(tmp_path: Path) -> None:
    card_file(tmp_path, "typo.json", card({"type": "TextBlock", "text": "Hi ${Guest.Nmae}"}))
    path = write(tmp_path, welcome_with("typo.json"))
    assert only_problem(path) == in_template(
        path, "typo.json", "$.body[0].text: unknown metadata name 'Guest.Nmae': "
        "did you mean 'Guest.Name'?")


def test_a_bad_template_file_is_reported_once_with_every_stage_that_uses_it(
        tmp_path: Path) -> None:
    (tmp_path / "cards").mkdir()
    card_file(tmp_path, "cards/shared.json",
              card({"type": "TextBlock", "text": "Hi ${Guest.Nmae} from ${Tenant.Nmae}"}))
    path = write(tmp_path, desk("""
        - {key: welcome, action: message, template: cards/shared.json, next: again}
        - {key: again, action: message, template: cards/shared.json, next: done}
        - {key: done, action: end, template: ./cards/shared.json}
    """))
    assert problems(path) == [
        in_template(path, "cards/shared.json", "$.body[0].text: unknown metadata name "
                    f"{name!r}: did you mean {fix!r}?", "welcome", "again", "done")
        for name, fix in (("Guest.Nmae", "Guest.Name"), ("Tenant.Nmae", "Tenant.Name"))
    ]


def test_a_template_file_used_by_many_stages_lists_five_and_counts_the_rest(
        tmp_path: Path) -> None:
    card_file(tmp_path, "shared.json", card({"type": "TextBlock", "text": "${Guest.Nmae}"}))
    stages = "\n".join(f"- {{key: s{i}, action: message, template: shared.json, next: s{i + 1}}}"
                       for i in range(7))
    path = write(tmp_path, desk(stages + "\n- {key: s7, action: end}"))
    problem = only_problem(path)
    assert problem.endswith("stage 's4' `template`; and 2 more)")
    assert problem.count("stage 's") == 5


def test_the_binding_check_knows_each_propertys_type(tmp_path: Path) -> None:
    """A number bound alone into text is fine (it is written as text); text bound into a
    number property is refused at load; a number into a number property is fine."""
    fine = card({"type": "TextBlock", "text": "${Session.Hops}"},
                {"type": "Input.Number", "id": "hops", "value": "${Session.Hops}"},
                {"type": "FactSet", "facts": [{"title": "Hops", "value": "${Session.Hops}"}]})
    card_file(tmp_path, "fine.json", fine)
    path = write(tmp_path, welcome_with("fine.json"))
    config, _ = load_config(path)
    from cards.binding import bind

    bound = bind(config.template("it", "support", "welcome", "template"), {"Session.Hops": 2})
    assert bound["body"][0]["text"] == "2" and bound["body"][1]["value"] == 2
    assert bound["body"][2]["facts"][0]["value"] == "2"

    wrong = card({"type": "Input.Number", "id": "n", "value": "${Guest.Name}"},
                 {"type": "TextBlock", "text": "x", "isVisible": "${Guest.Name}"},
                 {"type": "TextBlock", "text": "${toLower(Session.Hops)}"})
    card_file(tmp_path, "wrong.json", wrong)
    path = write(tmp_path, welcome_with("wrong.json"))
    assert problems(path) == [
        in_template(path, "wrong.json", message) for message in (
            "$.body[0].value: this property needs a number, and Guest.Name is text",
            "$.body[1].isVisible: this property needs true or false, and Guest.Name is text",
            "$.body[2].text: toLower() takes text: Session.Hops is a number",
        )
    ]


def test_template_may_bind_what_a_question_stores(tmp_path: Path) -> None:
    card_file(tmp_path, "need.json", card({"type": "TextBlock", "text": "${Answers.Need}"}))
    path = write(tmp_path, desk("""
        - {key: ask, action: question, prompt: 'What?', store_as: Answers.Need, next: show}
        - {key: show, action: message, template: need.json}
    """))
    config, warnings = load_config(path)
    assert warnings == []
    assert config.template("it", "support", "show", "template")["body"][0]["text"] == (
        "${Answers.Need}"
    )


def test_inline_template_with_unsupported_dollar_key(tmp_path: Path) -> None:
    path = write(tmp_path, desk("""
        - key: welcome
          action: message
          template:
            type: AdaptiveCard
            version: "1.5"
            body:
              - {type: TextBlock, text: hi, $data: "${Guest.Name}"}
    """))
    assert only_problem(path) == in_stage(path, "welcome") + (
        "`template`: $.body[0]: '$data' is not supported (only $when and ${...})"
    )


def test_transfer_template_is_checked_too(tmp_path: Path) -> None:
    typo = card({"type": "TextBlock", "text": "${Session.TransferedTo.TenantName}"})
    card_file(tmp_path, "move.json", typo)
    path = write(tmp_path, desk("""
        - {key: move, action: tenant_transfer, tenant: hr, template: move.json}
    """))
    assert only_problem(path) == in_template(
        path, "move.json", "$.body[0].text: unknown metadata name "
        "'Session.TransferedTo.TenantName': did you mean 'Session.TransferredTo.TenantName'?",
        "move")


# --------------------------------------------------------------------------- settings


def test_prompt_with_a_bad_expression(tmp_path: Path) -> None:
    path = write(tmp_path, desk("""
        - {key: ask, action: question, prompt: "Hi ${Guest.Name", store_as: Answers.X, next: done}
        - {key: done, action: end}
    """))
    assert only_problem(path) == in_stage(path, "ask") + (
        "`prompt`: '${' at column 4 has no closing '}'"
    )


def test_menu_prompt_with_unknown_metadata(tmp_path: Path) -> None:
    path = write(tmp_path, desk("""
        - key: pick
          action: menu
          prompt: "Which one, ${Guest.Nmae}?"
          choices: [{id: a, title: A, next: done}]
        - {key: done, action: end}
    """))
    assert only_problem(path) == in_stage(path, "pick") + (
        "`prompt`: unknown metadata name 'Guest.Nmae': did you mean 'Guest.Name'?"
    )


def test_question_with_an_invalid_regex(tmp_path: Path) -> None:
    path = write(tmp_path, desk("""
        - key: ask
          action: question
          prompt: 'Number?'
          store_as: Answers.N
          pattern: "[0-9"
          next: done
        - {key: done, action: end}
    """))
    assert only_problem(path) == in_stage(path, "ask") + (
        "`pattern`: not a valid regular expression: unterminated character set at position 4"
    )


def test_unknown_setting_on_a_stage(tmp_path: Path) -> None:
    path = write(tmp_path, desk("""
        - {key: welcome, action: message, template: 'builtin:welcome', nxet: done, next: done}
        - {key: done, action: end}
    """))
    assert only_problem(path) == (
        in_stage(path, "welcome") + "`nxet`: unknown setting: remove it or check its spelling"
    )


def test_setting_of_another_action_is_unknown(tmp_path: Path) -> None:
    path = write(tmp_path, desk(WELCOME, """
        - {key: done, action: end}
        - {key: bye, action: end, prompt: Bye}
    """))
    assert only_problem(path) == (
        in_stage(path, "bye") + "`prompt`: unknown setting: remove it or check its spelling"
    )


def test_missing_required_setting(tmp_path: Path) -> None:
    path = write(tmp_path, desk("""
        - {key: ask, action: question, prompt: 'Name?', next: done}
        - {key: done, action: end}
    """))
    assert only_problem(path) == in_stage(path, "ask") + "`store_as`: required setting is missing"


def test_setting_with_a_wrong_value(tmp_path: Path) -> None:
    path = write(tmp_path, desk(WELCOME, """
        - {key: done, action: end}
        - {key: bye, action: end, state: closed}
    """))
    assert only_problem(path) == (
        in_stage(path, "bye") + "`state`: Input should be 'resolved' or 'ended'"
    )


# --------------------------------------------------------------------------- top level


def test_primary_tenant_unknown(tmp_path: Path) -> None:
    path = write(tmp_path, desk(WELCOME, "- {key: done, action: end}\n").replace(
        "primary_tenant: it", "primary_tenant: IT"))
    assert only_problem(path) == (
        at(path) + "`primary_tenant` 'IT' is not a tenant: use one of it, hr"
    )


def test_primary_tenant_disabled(tmp_path: Path) -> None:
    text = desk(WELCOME, "- {key: done, action: end}\n", hr_enabled=False)
    path = write(tmp_path, text.replace("primary_tenant: it", "primary_tenant: hr"))
    assert only_problem(path) == at(path) + "`primary_tenant` 'hr' is disabled: enable it"


def test_primary_tenant_missing(tmp_path: Path) -> None:
    text = desk(WELCOME, "- {key: done, action: end}\n")
    path = write(tmp_path, text.replace("primary_tenant: it\n", ""))
    assert only_problem(path) == at(path) + "`primary_tenant`: required setting is missing"


def test_primary_pipeline_unknown(tmp_path: Path) -> None:
    text = desk(WELCOME, "- {key: done, action: end}\n")
    path = write(tmp_path, text.replace("primary_pipeline: support", "primary_pipeline: suport"))
    assert only_problem(path) == (
        at(path, "it") + "`primary_pipeline` 'suport' is not one of its pipelines: support"
    )


def test_duplicate_tenant_ids(tmp_path: Path) -> None:
    text = desk(WELCOME, "- {key: done, action: end}\n")
    path = write(tmp_path, text.replace("  - id: hr\n", "  - id: it\n"))
    assert only_problem(path) == (
        at(path, "it") + "duplicate tenant id: every department needs its own id"
    )


def test_duplicate_pipeline_ids(tmp_path: Path) -> None:
    path = write(tmp_path, """\
primary_tenant: it
tenants:
  - id: it
    name: IT
    primary_pipeline: support
    pipelines:
      - {id: support, stages: [{key: done, action: end}]}
      - {id: support, stages: [{key: done, action: end}]}
""")
    assert only_problem(path) == at(path, "it", "support") + "duplicate pipeline id"


def test_unknown_top_level_setting(tmp_path: Path) -> None:
    text = desk(WELCOME, "- {key: done, action: end}\n")
    path = write(tmp_path, "max_transfer_hop: 3\n" + text)
    assert only_problem(path) == (
        at(path) + "`max_transfer_hop`: unknown setting: remove it or check its spelling"
    )


def test_tenants_missing(tmp_path: Path) -> None:
    path = write(tmp_path, "primary_tenant: it\n")
    assert only_problem(path) == at(path) + "`tenants` must be a non-empty list of departments"


def test_file_that_is_not_yaml(tmp_path: Path) -> None:
    path = write(tmp_path, "primary_tenant: it\ntenants: [a, b\n  key: : :\n")
    problem = only_problem(path)
    assert problem == (
        f"{path}: not valid YAML: expected ',' or ']', but got ':' at line 3, column 6"
    )


def test_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "switchboard.yaml"
    path.write_bytes(b"primary_tenant: \xff\xfe\n")
    assert only_problem(path) == f"{path}: not UTF-8 text: save the file as UTF-8"


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.yaml"
    assert only_problem(path) == f"{path}: cannot read the file: No such file or directory"


@pytest.mark.parametrize("text", ["- a\n- b\n", "just text\n", "42\n", "", "null\n"])
def test_top_level_that_is_not_a_mapping(tmp_path: Path, text: str) -> None:
    path = write(tmp_path, text)
    assert only_problem(path) == f"{path}: the top level must be a mapping with `tenants:`"


def test_json_config_loads(tmp_path: Path) -> None:
    raw = {
        "primary_tenant": "it",
        "tenants": [
            {
                "id": "it",
                "name": "IT",
                "primary_pipeline": "support",
                "pipelines": [
                    {
                        "id": "support",
                        "stages": [
                            {"key": "welcome", "action": "message",
                             "template": "builtin:welcome", "next": "done"},
                            {"key": "done", "action": "end"},
                        ],
                    }
                ],
            }
        ],
    }
    path = write(tmp_path, json.dumps(raw), "switchboard.json")
    config, warnings = load_config(path)
    assert warnings == []
    assert config.primary.id == "it"
    assert [s.key for s in config.primary.primary.stages] == ["welcome", "done"]
    assert config.source == str(path)
    assert config.template("it", "support", "welcome", "template")["type"] == "AdaptiveCard"


def test_json_config_that_does_not_parse(tmp_path: Path) -> None:
    path = write(tmp_path, '{"primary_tenant": "it", }', "switchboard.json")
    assert only_problem(path) == (
        f"{path}: not valid JSON: Expecting property name enclosed in double quotes "
        "at line 1, column 26"
    )


def test_json_config_errors_are_located_too(tmp_path: Path) -> None:
    raw = {
        "primary_tenant": "it",
        "tenants": [{"id": "it", "name": "IT", "primary_pipeline": "support", "pipelines": [
            {"id": "support", "stages": [
                {"key": "a", "action": "message", "template": "builtin:welcome", "next": "b"},
            ]},
        ]}],
    }
    path = write(tmp_path, json.dumps(raw), "switchboard.json")
    assert only_problem(path) == at(path, "it", "support", "a") + (
        "`next` points to 'b', which is not a stage of this pipeline: use one of a"
    )


# --------------------------------------------------------------------------- all at once


def test_several_errors_are_all_reported_at_once(tmp_path: Path) -> None:
    card_file(tmp_path, "typo.json", card({"type": "TextBlock", "text": "${Guest.Nmae}"}))
    text = desk("""
        - {key: welcome, action: message, template: typo.json, next: ask}
        - {key: ask, action: question, prompt: 'Name?', store_as: Answers.Name, next: gone}
        - {key: move, action: tenant_transfer, tenant: legal}
        - {key: done, action: end, colour: blue}
    """).replace("primary_pipeline: intake", "primary_pipeline: intak")
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    expected = [
        in_stage(path, "done") + "`colour`: unknown setting: remove it or check its spelling",
        at(path, "hr") + "`primary_pipeline` 'intak' is not one of its pipelines: intake",
        in_stage(path, "ask") + "`next` points to 'gone', which is not a stage of this pipeline: "
        "use one of ask, move, welcome",
        in_stage(path, "move") + "transfer to unknown tenant 'legal': use one of hr, it",
        in_template(path, "typo.json", "$.body[0].text: unknown metadata name 'Guest.Nmae': "
                    "did you mean 'Guest.Name'?"),
    ]
    assert sorted(info.value.problems) == sorted(expected)
    message = str(info.value)
    assert message.startswith("configuration has 5 problems:\n  - ")
    for problem in expected:
        assert f"\n  - {problem}" in message


def test_one_problem_is_singular(tmp_path: Path) -> None:
    path = write(tmp_path, desk("- {key: move, action: tenant_transfer, tenant: legal}"))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value).startswith("configuration has 1 problem:\n  - ")


def test_unreachable_stage_is_a_warning(tmp_path: Path) -> None:
    path = write(tmp_path, desk(WELCOME, """
        - {key: done, action: end}
        - {key: orphan, action: end, state: ended}
    """))
    config, warnings = load_config(path)
    assert warnings == [in_stage(path, "orphan") + "unreachable: no stage leads to it"]
    assert [s.key for s in config.tenant("it").primary.stages] == ["welcome", "done", "orphan"]


def test_stage_reached_only_through_a_menu_or_hop_limit_is_reachable(tmp_path: Path) -> None:
    path = write(tmp_path, desk("""
        - key: pick
          action: menu
          prompt: 'Where to?'
          choices: [{id: hr, title: HR, next: move}]
        - {key: move, action: tenant_transfer, tenant: hr, on_hop_limit: done}
        - {key: done, action: end}
    """))
    _, warnings = load_config(path)
    assert warnings == []


# --------------------------------------------------------------------------- hostile files


def test_deeply_nested_yaml(tmp_path: Path) -> None:
    path = write(tmp_path, "[" * 10_000 + "]" * 10_000)
    assert only_problem(path) == f"{path}: nested too deeply to be a configuration"


def test_deeply_nested_unclosed_yaml(tmp_path: Path) -> None:
    path = write(tmp_path, "tenants: " + "[" * 10_000)
    assert only_problem(path) == f"{path}: nested too deeply to be a configuration"


def test_deeply_nested_json(tmp_path: Path) -> None:
    path = write(tmp_path, "[" * 100_000 + "]" * 100_000, "switchboard.json")
    assert only_problem(path) == f"{path}: nested too deeply to be a configuration"


def test_nesting_over_the_limit_but_parseable(tmp_path: Path) -> None:
    path = write(tmp_path, "primary_tenant: it\nextra: " + "[" * 60 + "]" * 60 + "\n")
    assert only_problem(path) == f"{path}: nested more than 40 levels deep: flatten it"


def test_enormous_file(tmp_path: Path) -> None:
    path = write(tmp_path, "primary_tenant: " + "x" * 5_000_000 + "\n")
    assert only_problem(path) == (
        f"{path}: the file is over {MAX_CONFIG_BYTES // 1024} KB: keep card templates in "
        "their own files and reference them with `template: file.json`"
    )


def test_enormous_string_under_the_size_limit(tmp_path: Path) -> None:
    big = "x" * 1_900_000
    path = write(tmp_path, desk(f"""
        - {{key: ask, action: question, prompt: "{big}", store_as: Answers.X, next: done}}
        - {{key: done, action: end}}
    """))
    problem = only_problem(path)
    assert problem == in_stage(path, "ask") + "`prompt`: String should have at most 2000 characters"


def test_enormous_stage_key_gives_a_short_message(tmp_path: Path) -> None:
    big = "k" * 1_900_000
    stages = desk(WELCOME, "- {key: done, action: end}", f"- {{key: {big}, action: end}}")
    path = write(tmp_path, stages)
    problem = only_problem(path)
    assert "`key`: String should match pattern" in problem
    assert len(problem) < 1000


def test_alias_bomb_fails_fast(tmp_path: Path) -> None:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 7)]
    path = write(tmp_path, "\n".join([*lines, "tenants: *a6", ""]))
    started = time.perf_counter()
    with pytest.raises(ConfigError):
        load_config(path)
    assert time.perf_counter() - started < 1.0


# --------------------------------------------------------------------------- cascades


@pytest.mark.parametrize(
    ("stages", "expected"),
    [
        # `welcome` points to `ask`, which is invalid: only the invalid stage is a problem
        (
            """
            - {key: welcome, action: message, template: 'builtin:welcome', next: ask}
            - {key: ask, action: question, prompt: 'Name?', next: done}
            - {key: done, action: end}
            """,
            ("ask", "`store_as`: required setting is missing"),
        ),
        # the primary tenant's only stage is invalid: no "`primary_tenant` is not a tenant"
        (
            "- {key: oops, action: mesage}",
            ("oops", f"unknown action type 'mesage': use one of {ACTIONS}"),
        ),
    ],
)
def test_an_invalid_part_is_reported_once(
    tmp_path: Path, stages: str, expected: tuple[str, str]
) -> None:
    path = write(tmp_path, desk(stages))
    stage, message = expected
    assert problems(path) == [in_stage(path, stage) + message]


def test_invalid_tenant_is_not_also_unknown(tmp_path: Path) -> None:
    text = desk("- {key: move, action: tenant_transfer, tenant: hr}").replace("    name: HR\n", "")
    path = write(tmp_path, text)
    assert problems(path) == [at(path, "hr") + "`name`: required setting is missing"]


# --------------------------------------------------------------------------- the example


def test_example_config_loads_without_warnings() -> None:
    config, warnings = load_config(EXAMPLE)
    assert warnings == []
    assert config.primary_tenant == "service-desk"
    assert [t.id for t in config.tenants] == ["service-desk", "it", "hr", "legal"]
    assert {
        "hr/hr-intake/summary/template",
        "it/it-support/summary/template",
        "legal/legal-intake/summary/template",
        "service-desk/triage/to_hr/template",
        "service-desk/triage/to_it/template",
        "service-desk/triage/to_legal/template",
        "service-desk/triage/welcome/template",
    } <= set(config.templates)
    # every tenant's transfer card for agent transfers is resolved too
    assert {f"{t}/-/-/transfer_template" for t in ("service-desk", "it", "hr", "legal")} <= set(
        config.templates
    )
