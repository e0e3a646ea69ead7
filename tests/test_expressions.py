"""The safe expression language behind `$when`, `${...}` and pipeline conditions."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cards.expressions import (
    MAX_DEPTH,
    MAX_LENGTH,
    And,
    Call,
    Compare,
    ExpressionError,
    In,
    ListLiteral,
    Literal,
    Not,
    Or,
    Path,
    format_value,
    parse,
    truthy,
)

VALUES = {
    "Guest.Name": "Ada",
    "Answers.Dept": "IT",
    "Answers.Count": 3,
    "Answers.Ratio": 2.5,
    "Answers.Urgent": True,
    "Answers.Blank": "",
    "Answers.Spaces": "   ",
    "Answers.Tags": ["vpn", "laptop"],
    "Answers.None": None,
    "Answers.Zero": 0,
    "Answers.Number": "3",
}


def ev(text: str, values: dict | None = None):
    return parse(text).evaluate(VALUES if values is None else values)


# ---------------------------------------------------------------------------- AST shape


def test_parse_builds_typed_ast():
    assert parse("Guest.Name") == Path("Guest.Name")
    assert parse("'a'") == Literal("a")
    assert parse("42") == Literal(42)
    assert parse("-1.5") == Literal(-1.5)
    assert parse("true") == Literal(True)
    assert parse("null") == Literal(None)
    assert parse("a == 'x'") == Compare("==", Path("a"), Literal("x"))
    assert parse("!a") == Not(Path("a"))
    assert parse("a in ['x', 1]") == In(Path("a"), ListLiteral((Literal("x"), Literal(1))))
    assert parse("contains(a, 'b')") == Call("contains", (Path("a"), Literal("b")))


def test_and_binds_tighter_than_or():
    assert parse("a || b && c") == Or((Path("a"), And((Path("b"), Path("c")))))
    assert parse("a and b or c") == Or((And((Path("a"), Path("b"))), Path("c")))


def test_long_chains_are_flat():
    assert parse("a || b || c || d") == Or((Path("a"), Path("b"), Path("c"), Path("d")))
    assert parse("a && b && c") == And((Path("a"), Path("b"), Path("c")))


def test_not_binds_looser_than_comparison():
    assert parse("!a == 'IT'") == Not(Compare("==", Path("a"), Literal("IT")))
    assert parse("not a in ['x']") == Not(In(Path("a"), ListLiteral((Literal("x"),))))
    assert parse("!a && b") == And((Not(Path("a")), Path("b")))


def test_parentheses_override_precedence():
    assert parse("(a || b) && c") == And((Or((Path("a"), Path("b"))), Path("c")))


def test_keywords_allowed_after_a_dot():
    assert parse("Answers.in.or") == Path("Answers.in.or")


def test_paths_lists_every_name_read():
    expr = parse("exists(A.B) && (lower(C) == 'x' || D in [E, 'y']) && !F")
    assert expr.paths() == frozenset({"A.B", "C", "D", "E", "F"})
    assert parse("'literal'").paths() == frozenset()


# ---------------------------------------------------------------------------- evaluation


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Guest.Name", "Ada"),
        ("Missing.Path", None),
        ("Guest.Name == 'Ada'", True),
        ("Guest.Name == 'ada'", False),  # case-sensitive
        ("Guest.Name != 'Ada'", False),
        ("lower(Guest.Name) == 'ada'", True),
        ("upper(Guest.Name)", "ADA"),
        ("lower(Answers.Count)", 3),  # non-strings pass through
        ("lower(Missing)", None),
        ("Answers.Count == 3", True),
        ("Answers.Count == 3.0", True),
        ("Answers.Number == 3", False),  # numeric strings are not coerced
        ("Answers.Number == '3'", True),
        ("Answers.Urgent == 1", False),  # booleans are not numbers
        ("Answers.Urgent == true", True),
        ("Answers.Count > 2 && Answers.Count <= 3", True),
        ("Answers.Ratio >= 2.5", True),
        ("Answers.Ratio < 2", False),
        ("'apple' < 'banana'", True),
        ("'a' < 3", False),
        ("'a' >= 3", False),
        ("Missing < 3", False),
        ("Missing > 3", False),
        ("Answers.Urgent > 0", False),
        ("Missing == null", True),
        ("Answers.Blank == null", False),
        ("Answers.Dept in ['IT', 'HR']", True),
        ("Answers.Dept in ['it', 'HR']", False),
        ("Answers.Count in [1, 2, 3]", True),
        ("Answers.Count in ['3']", False),
        ("Missing in []", False),
        ("Missing in [null]", True),
        ("Answers.Dept in [Guest.Name, 'IT']", True),
        ("exists(Guest.Name)", True),
        ("exists(Answers.Blank)", True),
        ("exists(Answers.None)", False),
        ("exists(Missing)", False),
        ("empty(Missing)", True),
        ("empty(Answers.Blank)", True),
        ("empty(Answers.Spaces)", True),
        ("empty(Guest.Name)", False),
        ("empty(Answers.Zero)", False),
        ("empty(Answers.Tags)", False),
        ("contains(Guest.Name, 'd')", True),
        ("contains(Guest.Name, 'D')", False),
        ("contains(Answers.Tags, 'vpn')", True),
        ("contains(Answers.Tags, 'vp')", False),
        ("contains(Answers.Count, 3)", False),
        ("contains(Guest.Name, 3)", False),
        ("!exists(Missing)", True),
        ("not true", False),
        ("!!Guest.Name", True),
        ("Answers.Zero || Answers.Blank", False),
        ("Answers.Zero || Guest.Name", True),
        ("true and false", False),
        ("'it\\'s' == \"it's\"", True),
        ("'a\\nb'", "a\nb"),
        ("'\\u00e9'", "é"),
        ("['a', 1]", ["a", 1]),
        ("-3 < 0", True),
    ],
)
def test_evaluate(text, expected):
    result = ev(text)
    assert result == expected
    assert type(result) is type(expected)


def test_evaluation_never_raises_on_odd_values():
    values = {"X": object(), "Y": {"a": 1}, "Z": float("nan")}
    assert ev("X == 1 || X < 1 || X == 'x'", values) is False
    assert ev("Y == Y", values) is True
    assert ev("Z < 1 || Z >= 1", values) is False
    assert ev("contains(Y, 'a') || lower(X) == 1", values) is False


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, False), ("", False), (0, False), (0.0, False), (False, False), ([], False),
        ({}, False), ("0", True), ("false", True), (" ", True), (1, True), ([0], True),
        (True, True),
    ],
)
def test_truthy(value, expected):
    assert truthy(value) is expected


@pytest.mark.parametrize(
    ("value", "text"),
    [(None, ""), (True, "true"), (False, "false"), (3.0, "3"), (2.5, "2.5"), (7, "7"),
     (["a", 1, None], "a, 1, "), ({"k": "v"}, '{"k": "v"}'), ("x", "x"), (1e20, "1e+20")],
)
def test_format_value(value, text):
    assert format_value(value) == text


# ---------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("text", "position", "message"),
    [
        ("", 0, "empty expression"),
        ("a ==", 4, "expected a value, found end of expression"),
        ("a = 'x'", 2, "unexpected character '=' (use == to compare)"),
        ("a & b", 2, "unexpected character '&' (use &&)"),
        ("a | b", 2, "unexpected character '|' (use ||)"),
        ("a $ b", 2, "unexpected character '$'"),
        ("'open", 0, "unterminated string"),
        ("'bad \\q'", 5, "unknown escape \\q"),
        ("(a", 2, "expected ')', found end of expression"),
        ("a b", 2, "unexpected 'b'"),
        ("a.", 2, "expected a name after '.', found end of expression"),
        ("a.1", 2, "expected a name after '.', found 1"),
        ("3abc", 0, "bad number '3a'"),
        ("a in 'x'", 5, "'in' needs a list like ['a', 'b'], found a string"),
        ("a < b < c", 6, "comparisons cannot be chained; join them with &&"),
        ("a == b in [1]", 7, "comparisons cannot be chained; join them with &&"),
        ("eval('1')", 0, "unknown function 'eval' (known: contains, empty, exists, lower, upper)"),
        ("Guest.__class__()", 15, "unexpected '('"),
        ("lower()", 0, "lower() takes 1 argument, got 0"),
        ("contains(a)", 0, "contains() takes 2 arguments, got 1"),
        ("empty(a, b)", 0, "empty() takes 1 argument, got 2"),
        ("exists('x')", 0, "exists() takes a metadata name like Guest.Name"),
        ("x == and", 5, "expected a value, found 'and'"),
        ("[1, 2", 5, "expected ',' or ']', found end of expression"),
        ("- a", 0, "'-' must be followed by a number"),
        ("Gäst", 1, "unexpected character 'ä'"),
    ],
)
def test_errors_have_position_and_message(text, position, message):
    with pytest.raises(ExpressionError) as info:
        parse(text)
    assert info.value.message == message
    assert info.value.position == position
    assert str(info.value).startswith(f"{message} at column {position + 1}")


def test_error_string_quotes_the_expression():
    with pytest.raises(ExpressionError, match=r"at column 5 in 'a ==' *$"):
        parse("a ==")


def test_length_limit():
    ok = "a || " * ((MAX_LENGTH - 1) // 5) + "a"
    assert len(ok) <= MAX_LENGTH
    parse(ok)
    with pytest.raises(ExpressionError, match=f"longer than {MAX_LENGTH} characters"):
        parse("a" * (MAX_LENGTH + 1))


def test_depth_limit():
    parse("(" * MAX_DEPTH + "a" + ")" * MAX_DEPTH)
    with pytest.raises(ExpressionError) as info:
        parse("(" * (MAX_DEPTH + 1) + "a" + ")" * (MAX_DEPTH + 1))
    assert info.value.message == f"expression nested deeper than {MAX_DEPTH} levels"
    assert info.value.position == MAX_DEPTH
    for hostile in ("!" * 200 + "a", "[" * 200, "lower(" * 200 + "a" + ")" * 200):
        with pytest.raises(ExpressionError, match="nested deeper"):
            parse(hostile)


def test_no_python_objects_are_reachable():
    # attribute-style paths are only names in the mapping
    assert ev("Guest.Name.__class__", {"Guest.Name": "Ada"}) is None
    assert ev("__import__", {}) is None


@given(st.text(max_size=60))
def test_parse_never_raises_anything_but_expression_error(text):
    try:
        expr = parse(text)
    except ExpressionError:
        return
    expr.evaluate(VALUES)  # and evaluation never raises
