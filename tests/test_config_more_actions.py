"""Load-time errors of the faq, business_hours, feedback, condition and set_metadata settings,
and of the tenant's knowledge base and opening hours: each names the file, tenant, pipeline and
stage, and says how to fix it (as tests/test_config_loader.py does for the other actions)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from pipelines.loader import ConfigError, load_config

CONFIG = """\
primary_tenant: it
tenants:
  - id: it
    name: IT
    primary_pipeline: support
{tenant}
    pipelines:
      - id: support
        stages:
{stages}
"""
KB = "articles:\n  - {id: a, title: A, answer: x}\n"
HOURS = "timezone: Europe/Paris\nopening_hours: {monday: ['09:00-17:00']}"
DONE = "- {key: done, action: end}"


def write(tmp_path: Path, tenant: str, *stages: str, files: dict[str, str] | None = None) -> Path:
    for name, text in (files or {}).items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text, encoding="utf-8")
    stage_text = "\n".join(textwrap.dedent(s).strip("\n") for s in stages)
    path = tmp_path / "switchboard.yaml"
    path.write_text(CONFIG.format(
        tenant=textwrap.indent(textwrap.dedent(tenant).strip("\n"), " " * 4),
        stages=textwrap.indent(stage_text, " " * 10),
    ), encoding="utf-8")
    return path


def problems(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    prefix = f"{path} > "
    return [p.removeprefix(prefix) for p in info.value.problems]


def only_problem(path: Path) -> str:
    [found] = problems(path)
    return found


def faq(tenant: str = "knowledge_base: kb/it.yaml", files: dict | None = None,
        stage: str = "- {key: f, action: faq, question_from: Guest.Name, next: done}",
        tmp_path: Path | None = None) -> Path:
    assert tmp_path is not None
    return write(tmp_path, tenant, stage, DONE, files=files)


# --------------------------------------------------------------------------- knowledge base


def test_a_valid_knowledge_base_loads_and_is_indexed_once(tmp_path: Path) -> None:
    path = faq(files={"kb/it.yaml": KB}, tmp_path=tmp_path)
    config, warnings = load_config(path)
    assert warnings == []
    knowledge = config.knowledge_base("it")
    assert [a.id for a in knowledge.articles] == ["a"]
    assert knowledge._index is not None
    # the published config keeps a digest of it, not the articles
    published = config.model_dump(mode="json")
    assert "knowledge_bases" not in published
    assert published["knowledge_digests"] == {"it": knowledge.digest()}
    assert len(knowledge.digest()) == 64


def test_a_missing_knowledge_base_file(tmp_path: Path) -> None:
    assert only_problem(faq(tmp_path=tmp_path)) == (
        "tenant 'it': `knowledge_base` kb/it.yaml: file not found: check the path "
        "(relative to the config file)"
    )


def test_a_knowledge_base_that_is_not_yaml_or_json(tmp_path: Path) -> None:
    path = faq(files={"kb/it.yaml": "articles: [\n"}, tmp_path=tmp_path)
    assert only_problem(path) == (
        "tenant 'it': `knowledge_base` kb/it.yaml: not valid YAML: expected the node content, "
        "but found '<stream end>' at line 2, column 1"
    )
    path = faq("knowledge_base: kb/it.json", files={"kb/it.json": "{articles: 1}"},
               tmp_path=tmp_path)
    assert only_problem(path) == (
        "tenant 'it': `knowledge_base` kb/it.json: not valid JSON: Expecting property name "
        "enclosed in double quotes at line 1, column 2"
    )


def test_a_knowledge_base_in_the_wrong_shape(tmp_path: Path) -> None:
    path = faq(files={"kb/it.yaml": "- {id: a, title: A, answer: x}\n"}, tmp_path=tmp_path)
    assert only_problem(path) == (
        "tenant 'it': `knowledge_base` kb/it.yaml: the file must be a mapping with `articles:`, "
        "a list of {id, title, answer}, and/or `out_of_scope:`, a list of questions no article "
        "answers"
    )
    path = faq(files={"kb/it.yaml": "articles: []\n"}, tmp_path=tmp_path)
    assert only_problem(path) == (
        "tenant 'it': `knowledge_base` kb/it.yaml: `articles` is empty: add at least one "
        "article, or leave `articles` out of a file of `out_of_scope` questions"
    )


def test_every_bad_article_is_reported(tmp_path: Path) -> None:
    bad = (
        "articles:\n"
        "  - {id: a, answer: x}\n"
        "  - {id: 'b c', title: B, answer: y, link: 'ftp://x'}\n"
        "  - {id: d, title: D, answer: z, tags: [x]}\n"
        "  - nope\n"
        "extra: 1\n"
    )
    where = "tenant 'it': `knowledge_base` kb/it.yaml: "
    assert problems(faq(files={"kb/it.yaml": bad}, tmp_path=tmp_path)) == [
        where + "unknown setting `extra`: the file holds only `articles` and `out_of_scope`",
        where + "articles[0] (id 'a'): `title`: required setting is missing",
        where + "articles[1] (id 'b c'): `id`: letters, digits, - _ . only (at most 64)",
        where + "articles[1] (id 'b c'): `link`: must be an http:// or https:// address",
        where + "articles[2] (id 'd'): `tags`: unknown setting: an article has id, title, "
                "answer, keywords, questions, link",
        where + "articles[3] must be a mapping with id, title, answer",
    ]


def test_duplicate_article_ids_in_one_file_and_across_files(tmp_path: Path) -> None:
    path = faq(
        "knowledge_base: [kb/one.yaml, kb/two.yaml]",
        files={"kb/one.yaml": KB + "  - {id: a, title: A again, answer: x}\n", "kb/two.yaml": KB},
        tmp_path=tmp_path,
    )
    assert problems(path) == [
        "tenant 'it': `knowledge_base` kb/one.yaml: duplicate article id 'a' (twice in the "
        "file): every article needs its own id",
        "tenant 'it': `knowledge_base` kb/two.yaml: duplicate article id 'a' (also in "
        "kb/one.yaml): every article needs its own id",
    ]


def test_an_empty_knowledge_base_name(tmp_path: Path) -> None:
    path = write(tmp_path, "knowledge_base: ''", DONE)
    assert only_problem(path) == (
        "tenant 'it': `knowledge_base`: give a file name like kb/it.yaml, or a list of them"
    )


# --------------------------------------------------------------------------- faq


def test_faq_needs_a_knowledge_base_on_its_tenant(tmp_path: Path) -> None:
    assert only_problem(faq("", tmp_path=tmp_path)) == (
        "tenant 'it' > pipeline 'support' > stage 'f': tenant 'it' has no `knowledge_base`: "
        "add one to the tenant, like `knowledge_base: kb/it.yaml`"
    )


def test_faq_question_from_must_be_a_known_metadata_name(tmp_path: Path) -> None:
    path = write(
        tmp_path, "knowledge_base: kb/it.yaml",
        "- {key: q, action: question, prompt: x, store_as: Answers.Need, next: f}",
        "- {key: f, action: faq, question_from: Answers.Ned, next: done}",
        "- {key: g, action: faq, question_from: 'not a name', next: done}",
        DONE, files={"kb/it.yaml": KB},
    )
    assert problems(path) == [
        "tenant 'it' > pipeline 'support' > stage 'g': `question_from`: 'not a name' is not a "
        "metadata name: use the name a question stores, like Answers.Need",
        "tenant 'it' > pipeline 'support' > stage 'f': `question_from`: unknown metadata name "
        "'Answers.Ned': did you mean 'Answers.Need'?",
    ]


def test_faq_settings_out_of_range_and_bad_bindings(tmp_path: Path) -> None:
    path = write(
        tmp_path, "knowledge_base: kb/it.yaml",
        "- {key: f, action: faq, question_from: Guest.Name, max_results: 9, min_score: -1, "
        "next: done}",
        "- {key: h, action: faq, question_from: Guest.Name}",
        "- {key: g, action: faq, question_from: Guest.Name, min_score: 1.2, next: done}",
        "- {key: i, action: faq, question_from: Guest.Name, prompt: 'Hi ${Guest.Nam}', "
        "solved_template: {type: AdaptiveCard, version: '1.5', body: [{type: TextBlock, "
        "text: '${Faq.ArticleTitl}'}]}, next: done}",
        DONE, files={"kb/it.yaml": KB},
    )
    where = "tenant 'it' > pipeline 'support' > stage "
    assert problems(path) == [
        where + "'f': `max_results`: Input should be less than or equal to 5",
        where + "'f': `min_score`: Input should be greater than or equal to 0",
        where + "'h': `next`: required setting is missing",
        where + "'g': `min_score`: 1.2 is not a confidence: `min_score` is how sure the search "
                "must be that the best article answers, from 0 (always show) to below 1 "
                "(leave it out for the threshold chosen with the search's model); before issue "
                "16's second round it counted words in common, so drop the old value to use "
                "the default",
        where + "'i': `prompt`: unknown metadata name 'Guest.Nam': did you mean 'Guest.Name'?",
        where + "'i': `solved_template`: $.body[0].text: unknown metadata name "
                "'Faq.ArticleTitl': did you mean 'Faq.ArticleTitle'?",
    ]


# --------------------------------------------------------------------------- opening hours


BH = "- {key: h, action: business_hours, open: done, closed: done}"


def test_an_unknown_time_zone(tmp_path: Path) -> None:
    path = write(tmp_path, "timezone: Europe/Pari\nopening_hours: {monday: ['09:00-17:00']}",
                 BH, DONE)
    assert only_problem(path) == (
        "tenant 'it': `timezone`: unknown time zone 'Europe/Pari': did you mean 'Europe/Paris'?"
    )


def test_bad_intervals_overlaps_and_weekdays(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "timezone: Europe/Paris\nopening_hours: {monday: ['9-17'], tuesday: ['09:00-12:00', "
        "'11:00-13:00'], funday: ['09:00-10:00'], wednesday: ['18:00-09:00']}",
        BH, DONE,
    )
    assert problems(path) == [
        "tenant 'it': `opening_hours.monday`: '9-17' is not an interval like \"09:00-17:30\"",
        "tenant 'it': `opening_hours.tuesday`: intervals 09:00-12:00 and 11:00-13:00 overlap: "
        "merge them",
        "tenant 'it': `opening_hours.wednesday`: '18:00-09:00' ends before it starts: an "
        "interval ends on the same day (write \"22:00-24:00\" on one day and \"00:00-06:00\" on "
        "the next for a night shift)",
        "tenant 'it': `opening_hours.funday`: unknown setting: remove it or check its spelling",
    ]


def test_opening_hours_need_a_time_zone_and_an_open_interval(tmp_path: Path) -> None:
    path = write(tmp_path, "opening_hours: {monday: ['09:00-17:00']}", BH, DONE)
    assert only_problem(path) == (
        "tenant 'it': `opening_hours` needs `timezone`: add one like Europe/London"
    )
    path = write(tmp_path, "timezone: Europe/Paris\nopening_hours: {monday: []}", BH, DONE)
    assert only_problem(path) == (
        "tenant 'it': `opening_hours` has no open interval on any day: add one, like "
        "monday: [\"09:00-17:30\"]"
    )


def test_bad_and_duplicate_holidays(tmp_path: Path) -> None:
    path = write(tmp_path, HOURS + "\nholidays: ['2026-13-01', {date: 2026-12-25, nam: x}]",
                 BH, DONE)
    assert problems(path) == [
        "tenant 'it': `holidays.0.date`: Input should be a valid date or datetime, month value "
        "is outside expected range of 1-12",
        "tenant 'it': `holidays.1.nam`: unknown setting: remove it or check its spelling",
    ]
    path = write(tmp_path, HOURS + "\nholidays: [2026-12-25, {date: 2026-12-25, name: Xmas}]",
                 BH, DONE)
    assert only_problem(path) == "tenant 'it': `holidays` lists 2026-12-25 twice: keep one entry"
    path = write(tmp_path, "timezone: Europe/Paris\nholidays: [2026-12-25]", DONE)
    assert only_problem(path) == (
        "tenant 'it': `holidays` without `opening_hours`: add the weekly hours"
    )


# --------------------------------------------------------------------------- business_hours


def test_business_hours_needs_opening_hours_on_its_tenant(tmp_path: Path) -> None:
    assert only_problem(write(tmp_path, "", BH, DONE)) == (
        "tenant 'it' > pipeline 'support' > stage 'h': tenant 'it' has no `opening_hours`: add "
        "`timezone` and `opening_hours` (and `holidays` if any) to the tenant"
    )


def test_business_hours_settings(tmp_path: Path) -> None:
    path = write(
        tmp_path, HOURS,
        "- {key: h, action: business_hours, open: done, closed: nowhere, next: done}",
        "- {key: h2, action: business_hours, open: done}",
        "- {key: h3, action: business_hours, open: h3, closed: done}",
        DONE,
    )
    where = "tenant 'it' > pipeline 'support' > stage "
    assert problems(path) == [
        where + "'h2': give exactly one of `closed` (the stage to go to while closed) and "
                "`closed_template` (a card to send while closed, keeping the chat here)",
        where + "'h': `closed` points to 'nowhere', which is not a stage of this pipeline: use "
                "one of done, h, h3",
        where + "'h': `business_hours` has no `next`: use `open` and `closed`",
        where + "'h3': `open` and `closed` must lead to other stages, not back here",
    ]


def test_business_hours_closed_template_settings(tmp_path: Path) -> None:
    card = ('{"type": "AdaptiveCard", "version": "1.5", "body": [{"type": "TextBlock", '
            '"text": "Open on ${Tenant.NextOpen}"}]}')
    path = write(
        tmp_path, HOURS,
        f"- {{key: h, action: business_hours, open: done, closed_template: {card}, "
        "reopened: 'Open now, ${Guest.Name}'}",
        f"- {{key: h2, action: business_hours, open: done, closed: done, closed_template: {card}}}",
        "- {key: h3, action: business_hours, open: done, closed: done, reopened: hi}",
        "- {key: h4, action: business_hours, open: done, closed_template: nope.json}",
        "- {key: h5, action: business_hours, open: done, closed_template: {type: AdaptiveCard, "
        "version: '1.5', body: [{type: TextBlock, text: '${Tenant.NextOpn}'}]}}",
        DONE,
    )
    where = "tenant 'it' > pipeline 'support' > stage "
    found = problems(path)
    assert found[:2] == [
        where + "'h2': give exactly one of `closed` (the stage to go to while closed) and "
                "`closed_template` (a card to send while closed, keeping the chat here)",
        where + "'h3': `reopened` goes with `closed_template`: with `closed` nobody waits",
    ]
    assert ("template nope.json: file not found: check the path (relative to the config file) "
            "(used by " + where + "'h4' `closed_template`)") in found
    assert any(p.startswith(where + "'h5': `closed_template`") and "'Tenant.NextOpen'" in p
               for p in found), found
    assert not any("'h':" in p for p in found), found


# --------------------------------------------------------------------------- feedback


def test_feedback_settings(tmp_path: Path) -> None:
    path = write(
        tmp_path, "",
        "- {key: a, action: feedback, prefix: Session.X, next: done}",
        "- {key: b, action: feedback, style: stars, max_comment_length: 0, next: done}",
        "- {key: c, action: feedback}",
        "- {key: d, action: feedback, thanks: 'Thanks ${Guest.Nme}', next: done}",
        "- {key: e, action: feedback, prefix: 'Feed back', next: done}",
        DONE,
    )
    where = "tenant 'it' > pipeline 'support' > stage "
    assert problems(path) == [
        where + "'a': `prefix`: 'Session.X' would overwrite the bot's own metadata: use a "
                "prefix like Feedback",
        where + "'b': `style`: Input should be 'choices' or 'buttons'",
        where + "'b': `max_comment_length`: Input should be greater than or equal to 1",
        where + "'c': `next`: required setting is missing",
        where + "'e': `prefix`: 'Feed back' is not a metadata name: use one like Feedback",
        where + "'d': `thanks`: unknown metadata name 'Guest.Nme': did you mean 'Guest.Name'?",
    ]


def test_feedback_metadata_can_be_bound_by_later_stages(tmp_path: Path) -> None:
    path = write(
        tmp_path, "",
        "- {key: a, action: feedback, prefix: Survey, next: done}",
        "- {key: done, action: end, template: {type: AdaptiveCard, version: '1.5', body: "
        "[{type: TextBlock, text: 'Rated ${Survey.Rating}: ${Survey.Comment}'}]}}",
    )
    load_config(path)


# --------------------------------------------------------------------------- condition


def test_condition_expressions_are_parsed_and_checked_at_load(tmp_path: Path) -> None:
    path = write(
        tmp_path, "",
        "- {key: q, action: question, prompt: x, store_as: Answers.Department, next: a}",
        "- {key: a, action: condition, branches: [{when: \"Guest.Name = 'x'\", next: done}], "
        "otherwise: done}",
        "- {key: b, action: condition, branches: [{when: \"Answers.Dept == 'HR'\", next: done}, "
        "{when: 'exists(Guest.Nme)', next: nowhere}], otherwise: done}",
        "- {key: c, action: condition, branches: []}",
        "- {key: d, action: condition, branches: [{when: 'true', next: d}], otherwise: done, "
        "next: done}",
        "- {key: e, action: condition, branches: [{when: '${a} && ${b}', next: done}], "
        "otherwise: done}",
        DONE,
    )
    where = "tenant 'it' > pipeline 'support' > stage "
    assert problems(path) == [
        where + "'a': `branches.0.when`: not a valid expression: unexpected character '=' (use "
                "== to compare) at column 12 in \"Guest.Name = 'x'\"",
        where + "'c': `branches`: List should have at least 1 item after validation, not 0",
        where + "'c': `otherwise`: required setting is missing",
        where + "'e': `branches.0.when`: write the expression itself, without ${...} inside, "
                "like Answers.Urgency == 'Blocking' && exists(Guest.Name)",
        where + "'b': `branches.1.next` points to 'nowhere', which is not a stage of this "
                "pipeline: use one of b, d, done, q",
        where + "'d': `condition` has no `next`: use `branches` and `otherwise`",
        where + "'d': a branch leads back to this stage: that would loop; pick another",
        where + "'b': `branches.0.when`: unknown metadata name 'Answers.Dept': did you mean "
                "'Answers.Department'?",
        where + "'b': `branches.1.when`: unknown metadata name 'Guest.Nme': did you mean "
                "'Guest.Name'?",
    ]


def test_condition_may_wrap_its_expression_in_a_binding(tmp_path: Path) -> None:
    path = write(
        tmp_path, "",
        "- {key: a, action: condition, branches: [{when: '${exists(Guest.Name)}', next: done}],"
        " otherwise: done}",
        DONE,
    )
    config, _ = load_config(path)
    [branch] = config.tenant("it").primary.stage("a").branches
    assert branch.expression.paths() == {"Guest.Name"}


# --------------------------------------------------------------------------- set_metadata


def test_set_metadata_keys_and_values(tmp_path: Path) -> None:
    path = write(
        tmp_path, "",
        "- {key: a, action: set_metadata, values: {'bad key': 1}, next: done}",
        "- {key: b, action: set_metadata, values: {Guest.Name: x}, next: done}",
        "- {key: c, action: set_metadata, values: {Session.Id: x}, next: done}",
        "- {key: d, action: set_metadata, values: {Answers.Z: [1]}, next: done}",
        "- {key: e, action: set_metadata, values: {}}",
        DONE,
    )
    where = "tenant 'it' > pipeline 'support' > stage "
    assert problems(path) == [
        where + "'a': `values`: 'bad key' is not a metadata name: use dotted names like "
                "Answers.Source",
        where + "'b': `values`: 'Guest.Name' is the bot's own metadata and cannot be set: use "
                "another name, like Answers.Source",
        where + "'c': `values`: 'Session.Id' is the bot's own metadata and cannot be set: use "
                "another name, like Answers.Source",
        where + "'d': `values`: the value of 'Answers.Z' must be text, a number, true/false or "
                "null",
        where + "'e': `next`: required setting is missing",
        where + "'e': `values`: Dictionary should have at least 1 item after validation, not 0",
    ]


def test_set_metadata_bindings_are_checked_like_templates(tmp_path: Path) -> None:
    path = write(
        tmp_path, "",
        "- {key: a, action: set_metadata, values: {Answers.X: 'Hi ${Guest.Nme}', "
        "Answers.Y: 'oops ${'}, next: b}",
        "- {key: b, action: message, template: {type: AdaptiveCard, version: '1.5', body: "
        "[{type: TextBlock, text: '${Answers.X} ${Answers.Y} ${Answers.W}'}]}, next: done}",
        DONE,
    )
    where = "tenant 'it' > pipeline 'support' > stage "
    assert problems(path) == [
        where + "'a': `values.Answers.X`: unknown metadata name 'Guest.Nme': did you mean "
                "'Guest.Name'?",
        where + "'a': `values.Answers.Y`: '${' at column 6 has no closing '}'",
        # what set_metadata writes can be bound later; a name no stage writes cannot
        where + "'b': `template`: $.body[0].text: unknown metadata name 'Answers.W': did you "
                "mean 'Answers.Y'?",
    ]
