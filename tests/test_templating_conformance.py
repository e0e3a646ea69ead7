"""Our card templating against Microsoft's own engine, on the same templates and data.

Microsoft's Adaptive Card Templating (`adaptivecards-templating` 2.3.1 with `adaptive-expressions`,
npm dev dependencies) runs in Node through tests/templating/ms_expand.js, all cases in one
batch. Every case is bound by both and compared exactly (types included: `true` is not `1`):

- SAME: every feature of the subset (cards/README.md), with every name present;
- the two differences kept on purpose, each checked to be exactly what cards/README.md says:
  a scalar bound alone into a text property is text here, and a name with no value is
  empty text here where Microsoft's engine shows the binding's source or fails;
- REFUSED: what is outside the subset: our load-time check refuses it with a reason, and
  Microsoft's engine is shown to fail on it or to read it differently.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from cards.binding import bind
from cards.expressions import format_value
from cards.schema import validate_card
from cards.template_checks import check_template

ROOT = Path(__file__).resolve().parent.parent
MS_EXPAND = ROOT / "tests" / "templating" / "ms_expand.js"

DATA: dict[str, Any] = {
    "Guest.Name": "Ada",
    "Answers.Dept": "IT",
    "Answers.Need": "Laptop is URGENT",
    "Answers.Blank": "",
    "Answers.Spaces": "   ",
    "Answers.Typed": "${Guest.Name} {\"$when\": \"${false}\"}",  # a guest typed this
    "Answers.Quote": "it's \"quoted\" \\ `tick` $ {x}",
    "Answers.Unicode": "Zoë 😀 ß",
    "Answers.Flag": True,
    "Answers.Off": False,
    "Session.Hops": 2,
    "Answers.Zero": 0,
    "Answers.Ratio": 2.5,
    "Answers.Float3": 3.0,
    "Answers.Big": 1e21,
    "Answers.Small": 1e-7,
    "Answers.Negative": -0.5,
}
TYPES = {k: "boolean" if isinstance(v, bool) else "number" if isinstance(v, int | float)
         else "string" for k, v in DATA.items()}

# expressions whose value is the same in both engines, with every name present
EXPRESSIONS = [
    # names
    "Guest.Name", "Session.Hops", "Answers.Ratio", "Answers.Flag", "Answers.Off", "Answers.Zero",
    "Answers.Blank", "Answers.Typed", "Answers.Quote", "Answers.Unicode", "Answers.Float3",
    "Answers.Big", "Answers.Small", "Answers.Negative", " Guest.Name ",
    # literals
    "'text'", '"double"', "'it\\'s'", '"say \\"hi\\""', "'tab\\tnew\\nline\\r'", "'back\\\\slash'",
    "'kept \\u0041 and \\/ and \\q'", "'a } b'", "12", "1.0", "2.5", "true", "false", "-1.5", "-3",
    # functions
    "toLower(Guest.Name)", "toUpper(Answers.Unicode)", "toLower(Answers.Need)",
    "toUpper('straße')", "toLower('ÀÉ')",
    "exists(Guest.Name)", "exists(Answers.Blank)", "exists(Answers.Off)",
    "empty(Answers.Blank)", "empty(Answers.Spaces)", "empty(Guest.Name)", "empty(Answers.Zero)",
    "empty(Answers.Off)", "empty([])", "empty(['x'])",
    "contains(Answers.Need, 'URGENT')", "contains(toLower(Answers.Need), 'urgent')",
    "contains(['IT', 'HR'], Answers.Dept)", "contains(['it'], Answers.Dept)",
    "contains([1, 2], Session.Hops)", "contains([2.0], Session.Hops)", "contains('abc', 1)",
    "not(Answers.Flag)", "not(Answers.Blank)", "not (Answers.Off)",
    # operators
    "Guest.Name == 'Ada'", "Guest.Name != 'ada'", "Guest.Name == \"Ada\"",
    "Session.Hops > 1", "Session.Hops >= 2", "Session.Hops < 2.5", "Answers.Ratio <= 2.5",
    "'a' < 'b'", "'B' < 'a'", "Answers.Unicode > 'Zo'", "'😀' < '\uffff'",
    "Session.Hops == 2.0", "'2' == Session.Hops", "Answers.Flag == true", "Answers.Flag == 1",
    "Answers.Zero == false", "Session.Hops == -2", "[1, 'a', true] == [1, 'a', true]",
    "[1, 2] == [2, 1]", "Guest.Name == null", "null == null", "Answers.Off != null",
    "!Answers.Flag", "!Answers.Blank", "!Answers.Zero", "!!Guest.Name", "!Answers.Off",
    "Answers.Flag && Session.Hops > 1", "Answers.Off || Answers.Flag", "Answers.Off || false",
    "Answers.Blank && true", "Answers.Zero || Answers.Off",
    "(Session.Hops > 1 || Answers.Off) && exists(Guest.Name)", "!(Guest.Name == 'Ada')",
    "Guest.Name == 'Ada' && Answers.Dept == 'IT' || Answers.Off",
    "Answers.Off && Guest.Name == 'Ada' || Session.Hops >= 2 && !Answers.Off",
]
# booleans (for $when): the same expressions, where they are true or false
BOOLEAN = [e for e in EXPRESSIONS
           if any(op in e for op in ("==", "!=", "<", ">", "!", "&&", "||", "exists(", "empty(",
                                     "contains(", "not"))
           or e.strip() in ("Answers.Flag", "Answers.Off")]


def card(*body: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"type": "AdaptiveCard", "version": "1.5", "body": list(body), **extra}


def text(value: str, **extra: Any) -> dict[str, Any]:
    return {"type": "TextBlock", "text": value, **extra}


def same_cases() -> list[tuple[str, Any, dict[str, Any]]]:
    cases: list[tuple[str, Any, dict[str, Any]]] = []
    for e in EXPRESSIONS:
        # inside a longer text; and alone where the schema does not say (Action.Submit data)
        cases.append((f"text [{e}]", card(text(f"[${{{e}}}] and ${{Guest.Name}}")), DATA))
        cases.append((f"data {e}", card(actions=[{"type": "Action.Submit", "title": "Go",
                                                   "data": {"value": f"${{{e}}}"}}]), DATA))
    for e in BOOLEAN:
        cases.append((f"$when {e}", card(text("always"), text("maybe", **{"$when": f"${{{e}}}"})),
                      DATA))
        cases.append((f"isVisible {e}", card(text("x", isVisible=f"${{{e}}}")), DATA))
    cases += [
        ("number property", card({"type": "Input.Number", "id": "n", "value": "${Session.Hops}"}),
         DATA),
        ("number property float", card({"type": "Input.Number", "id": "n",
                                         "value": "${Answers.Ratio}"}), DATA),
        ("text or number property", card({"type": "ColumnSet", "columns": [
            {"type": "Column", "width": "${Session.Hops}", "items": [text("a")]},
            {"type": "Column", "width": "${Answers.Dept}", "items": [text("b")]}]}), DATA),
        ("text alone stays text", card(text("${Guest.Name}"), text("${Answers.Blank}")), DATA),
        ("a lone literal is text", card(text("${'x'}"), text("${12}"), text("${true}")), DATA),
        ("escapes", card(text("\\${Guest.Name} is literal, ${Guest.Name} is not"),
                         text("a \\\\${Guest.Name}"), text("cost \\$5 for ${Guest.Name}"),
                         text("tick \\` ${Guest.Name}"), text("no binding: C:\\path `x` \\$")),
         DATA),
        ("guest text stays literal", card(text("${Answers.Typed}"), text("> ${Answers.Typed}"),
                                          text("${Answers.Quote}")), DATA),
        ("$ and braces that are not bindings", card(text("$ {not} {} $x ${Guest.Name} }")),
         DATA),
        ("keys are never bound", card(text("x"), **{"note ${Guest.Name}": "${Guest.Name}"}),
         DATA),
        ("$schema stays, $when goes", {**card(text("x")), "$schema": "http://x/schema.json",
                                       "$when": "${true == true}"}, DATA),
        ("the card's own $when", {**card(text("x")), "$when": "${Answers.Off}"}, DATA),
        ("$when of a non-boolean drops", card(
            text("a", **{"$when": "${Guest.Name}"}), text("b", **{"$when": "${Session.Hops}"}),
            text("c", **{"$when": "${Answers.Blank}"}), text("d")), DATA),
        ("nested $when", card({"type": "Container", "items": [
            text("in", **{"$when": "${exists(Guest.Name)}"}),
            {"type": "Container", "$when": "${Answers.Off}", "items": [text("gone")]},
            {"type": "FactSet", "facts": [
                {"title": "Dept", "value": "${Answers.Dept}", "$when": "${!empty(Answers.Dept)}"},
                {"title": "Hops", "value": "${Session.Hops} hop(s)"},
                {"title": "Gone", "value": "x", "$when": "${empty(Answers.Dept)}"}]}]}), DATA),
        ("choices", card({"type": "Input.ChoiceSet", "id": "c", "choices": [
            {"title": "${Answers.Dept}", "value": "${toLower(Answers.Dept)}"},
            {"title": "Other", "value": "other", "$when": "${Answers.Dept != 'IT'}"}]}), DATA),
        ("numbers in text", card(text("${Answers.Big} ${Answers.Small} ${Answers.Ratio} "
                                      "${Answers.Float3} ${Answers.Negative} ${-3} ${2.50}")),
         DATA),
        ("nulls in lists", card(text("a"), None, text("b")), DATA),
        ("non-string values pass", card(text("x", maxLines=2, wrap=True, separator=False)),
         DATA),
    ]
    return cases


# --- the differences kept on purpose ---------------------------------------------------------

# a scalar bound alone into a text property: Microsoft keeps the number (Teams shows nothing)
TEXT_SLOT = [("Session.Hops", 2), ("Answers.Ratio", 2.5), ("Answers.Flag", True),
             ("Session.Hops > 1", True), ("Answers.Zero", 0), ("Answers.Big", 1e21)]

# a name with no value
NO_VALUE = {"Guest.Name": None, "Answers.Dept": "IT"}  # Answers.Need: not there at all
NO_VALUE_SAME = [  # read without substitution in both engines
    "exists(Guest.Name)", "exists(Answers.Need)", "empty(Guest.Name)", "empty(Answers.Need)",
    "Guest.Name == null", "Answers.Need == null", "Answers.Need != 'x'", "!Guest.Name",
    "!Answers.Need", "Answers.Need || false", "Answers.Need && true", "Guest.Name < 'b'",
    "Answers.Need >= 2",
]
NO_VALUE_TEXT = [  # Microsoft: "${Answers.Need}" (missing) or a failed card (null); ours: ""
    ("Hi ${Answers.Need}!", "Hi !"),
    ("${Answers.Need}", ""),
    ("${toLower(Answers.Need)}", ""),
    ("Hi ${Guest.Name}!", "Hi !"),
]


def difference_cases() -> list[tuple[str, Any, dict[str, Any]]]:
    cases = [(f"text slot {e}", card(text(f"${{{e}}}")), DATA) for e, _ in TEXT_SLOT]
    for e in NO_VALUE_SAME:
        cases.append((f"no value $when {e}", card(text("maybe", **{"$when": f"${{{e}}}"})),
                      NO_VALUE))
        cases.append((f"no value text {e}", card(text(f"[${{{e}}}]")), NO_VALUE))
    cases += [(f"no value {t}", card(text(t)), NO_VALUE) for t, _ in NO_VALUE_TEXT]
    cases.append(("no value number property",
                  card({"type": "Input.Number", "id": "n", "value": "${Answers.Need}"}),
                  NO_VALUE))
    return cases


# --- outside the subset: refused at load, and why -----------------------------------------------

REFUSED: list[tuple[str, Any, str, Any]] = [
    # (name, template, what our check says, what Microsoft's engine does: "error", "dropped"
    # (the element), "null" (the property), or (key, value) of the first element)
    ("lower()", card(text("${lower(Guest.Name)}")), "calls it toLower()", "error"),
    ("upper()", card(text("${upper(Guest.Name)}")), "calls it toUpper()", "error"),
    ("in [list]", card(text("x", **{"$when": "${Answers.Dept in ['IT']}"})),
     "write contains(['a', 'b'], x)", "error"),
    ("and", card(text("${Answers.Flag and true}")), "write &&", "error"),
    ("or", card(text("${Answers.Flag or true}")), "write ||", "error"),
    ("not without parentheses", card(text("${not Answers.Flag}")), "write !x or not(x)",
     "error"),
    ("!x == y", card(text("x", **{"$when": "${!Answers.Dept == 'HR'}"})),
     "'!' applies to the value right after it", "dropped"),
    ("unlike types ordered", card(text("${Session.Hops > 'a'}")),
     "only two numbers or two texts can be ordered", "error"),
    ("toLower of a number", card(text("${toLower(Session.Hops)}")), "toLower() takes text",
     "error"),
    ("a backtick with a binding", card(text("`${Guest.Name}`")), "a backtick", "error"),
    ("${null}", card(text("x ${null}")), "${null} alone", "error"),
    ("chained comparison", card(text("${1 < 2 < 3}")), "cannot be chained", "error"),
    ("arithmetic", card(text("${Session.Hops + 1}")), "arithmetic is not supported", ("text", 3)),
    ("$data", card(text("${Guest.Name}", **{"$data": "${Answers.Dept}"})),
     "'$data' is not supported", ("text", "${Guest.Name}")),
    ("$when not an expression", card(text("x", **{"$when": True})),
     "$when must be one expression", "dropped"),
    ("$when with text around", card(text("x", **{"$when": "${Answers.Flag} "})),
     "this one is text in Microsoft's engine", "dropped"),
    ("$when of a literal", card(text("x", **{"$when": "${true}"})),
     "this one is text in Microsoft's engine", "dropped"),
    ("$when of text", card(text("x", **{"$when": "${Guest.Name}"})), "$when needs true or false",
     "dropped"),
    ("$when on a property's object", card(selectAction={
        "type": "Action.Submit", "$when": "${Answers.Off}"}),
     "Microsoft's engine leaves the property null", "null"),
    ("text into a number", card({"type": "Input.Number", "id": "n", "value": "${Guest.Name}"}),
     "this property needs a number, and Guest.Name is text", ("value", "Ada")),
    ("a lone literal into a number", card({"type": "Input.Number", "id": "n", "value": "${5}"}),
     "a lone literal like ${5} is text", ("value", "5")),
    ("a list as a whole value", card(text("x", isVisible="${[true]}")),
     "would add card structure", ("isVisible", [True])),
    ("a binding across lines", card(text("${Guest.\nName}")), "keep each ${...} on one line",
     ("text", "${Guest.\nName}")),
    ("empty ${}", card(text("a ${} b")), "empty ${}", ("text", "a ${} b")),
    ("objects", card(text("${{'a': 1}}")), "holds '{'", ("text", {"a": 1})),
]


def nest(flat: dict[str, Any]) -> dict[str, Any]:
    """Our flat metadata as the nested data Microsoft's engine reads (`Guest.Name`)."""
    out: dict[str, Any] = {}
    for key, value in flat.items():
        *parents, last = key.split(".")
        node = out
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    return out


@pytest.fixture(scope="module")
def microsoft() -> dict[str, dict[str, Any]]:
    """Microsoft's engine on every case of this module, in one Node process."""
    node = shutil.which("node")
    assert node, "Node.js is needed: bash scripts/setup --with-node"
    assert (ROOT / "node_modules" / "adaptivecards-templating").is_dir(), (
        "adaptivecards-templating is not installed: npm ci (bash scripts/setup --with-node)")
    batch = [{"id": name, "template": template, "data": nest(data)}
             for name, template, data in same_cases() + difference_cases()]
    batch += [{"id": name, "template": template, "data": nest(DATA)}
              for name, template, _, _ in REFUSED]
    result = subprocess.run([node, str(MS_EXPAND)], input=json.dumps(batch), capture_output=True,
                            text=True, timeout=60, check=True)
    return {item["id"]: item for item in json.loads(result.stdout)}


def strict(value: Any) -> Any:
    """JSON data with its types spelled out, so `true` never equals `1` nor `2.0` `"2"`."""
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, int | float):
        return ("number", float(value))
    if isinstance(value, dict):
        return {k: strict(v) for k, v in value.items()}
    if isinstance(value, list):
        return [strict(v) for v in value]
    return value


def ms_result(microsoft: dict[str, dict[str, Any]], name: str) -> Any:
    outcome = microsoft[name]
    assert "error" not in outcome, f"Microsoft's engine failed on {name!r}: {outcome['error']}"
    return outcome.get("result")


def test_every_feature_of_the_subset_gives_microsofts_result(microsoft):
    mismatches = []
    for name, template, data in same_cases():
        ours = bind(template, data)
        theirs = ms_result(microsoft, name)
        if strict(ours) != strict(theirs):
            mismatches.append(f"{name}:\n  ours:      {json.dumps(ours)}\n"
                              f"  Microsoft: {json.dumps(theirs)}")
    assert not mismatches, f"{len(mismatches)} mismatches:\n" + "\n".join(mismatches)


def test_the_corpus_passes_our_load_time_check():
    """Everything compared above is inside the subset: the check accepts it."""
    for name, template, _ in same_cases():
        if name == "nulls in lists":
            continue  # not a card a config could hold; its binding is compared above
        # with the names' types known, the check refuses a $when of text ("$when of text",
        # below); names of unknown type reach run time, where both engines drop the element
        types = {} if name == "$when of a non-boolean drops" else TYPES
        assert check_template(template, DATA.__contains__, types) == [], name


def test_the_corpus_makes_valid_cards():
    for name, template, data in same_cases():
        bound = bind(template, data)
        if bound is not None and name not in ("nulls in lists", "keys are never bound"):
            assert validate_card(bound) == [], name


def test_numbers_are_written_as_javascript_writes_them():
    """1,000 numbers of every magnitude, written by format_value and by Node's String()."""
    import random

    rng = random.Random(12)
    numbers = [rng.choice([1, -1]) * rng.random() * 10 ** rng.randint(-12, 25)
               for _ in range(1000)] + [0.1 + 0.2, 1e21, 1e-7, 5e-324, 2**53, -0.0]
    script = "let s='';process.stdin.on('data',c=>s+=c).on('end',()=>" \
             "console.log(JSON.stringify(JSON.parse(s).map(String))))"
    node = subprocess.run([shutil.which("node") or "node", "-e", script],
                          input=json.dumps(numbers), capture_output=True, text=True, timeout=60,
                          check=True)
    assert [format_value(n) for n in numbers] == json.loads(node.stdout)


def test_a_scalar_alone_in_a_text_property_is_text_here(microsoft):
    """Difference 1: Microsoft keeps the value's type; Teams shows no number where the schema
    wants text, so here it is written as Microsoft writes it inside a longer text."""
    for expression, value in TEXT_SLOT:
        name = f"text slot {expression}"
        theirs = ms_result(microsoft, name)["body"][0]["text"]
        assert strict(theirs) == strict(value), name
        ours = bind(card(text(f"${{{expression}}}")), DATA)["body"][0]["text"]
        assert ours == format_value(value), name
        # Microsoft's own text for it, inside a longer text
        inside = ms_result(microsoft, f"text [{expression}]")["body"][0]["text"]
        assert inside.startswith(f"[{ours}]"), name


def test_a_name_with_no_value(microsoft):
    """Difference 2: where the value is only tested, both agree; where it is shown, Microsoft
    shows the binding's own source (or fails the card, for null) and we show nothing."""
    for expression in NO_VALUE_SAME:
        for kind in ("$when", "text"):
            name = f"no value {kind} {expression}"
            template = card(text("maybe", **{"$when": f"${{{expression}}}"})) if kind == "$when" \
                else card(text(f"[${{{expression}}}]"))
            assert strict(bind(template, NO_VALUE)) == strict(ms_result(microsoft, name)), name
    for shown, ours in NO_VALUE_TEXT:
        name = f"no value {shown}"
        assert bind(card(text(shown)), NO_VALUE)["body"][0]["text"] == ours
        outcome = microsoft[name]
        if "Guest.Name" in shown:  # null
            assert "error" in outcome, outcome
        else:  # missing: the source stays, lower-cased by toLower
            assert "${" in outcome["result"]["body"][0]["text"].lower(), outcome
    number = card({"type": "Input.Number", "id": "n", "value": "${Answers.Need}"})
    assert bind(number, NO_VALUE)["body"][0] == {"type": "Input.Number", "id": "n"}
    assert ms_result(microsoft, "no value number property")["body"][0]["value"] == \
        "${Answers.Need}"


@pytest.mark.parametrize(("name", "template", "reason", "microsoft_does"), REFUSED,
                         ids=[r[0] for r in REFUSED])
def test_outside_the_subset_is_refused_at_load(microsoft, name, template, reason, microsoft_does):
    problems = check_template(template, DATA.__contains__, TYPES)
    assert any(reason in p for p in problems), problems
    outcome = microsoft[name]
    if microsoft_does == "error":
        assert "error" in outcome, outcome
        return
    body = outcome["result"].get("body") or []
    if microsoft_does == "dropped":
        assert body == [], outcome
    elif microsoft_does == "null":
        assert outcome["result"]["selectAction"] is None
    else:
        key, value = microsoft_does
        assert strict(body[0][key]) == strict(value), outcome
