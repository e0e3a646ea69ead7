"""The safe expression language behind `$when`, `${...}` and pipeline conditions: a subset of
Adaptive Expressions (tests/test_templating_conformance.py compares it with Microsoft's)."""

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
    ListLiteral,
    Literal,
    Not,
    Or,
    Path,
    format_value,
    is_true,
    logic_true,
    parse,
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
    "Answers.Sum": 0.1 + 0.2,
}


def ev(text: str, values: dict | None = None):
    return parse(text).evaluate(VALUES if values is None else values)


# ---------------------------------------------------------------------------- AST shape


def test_parse_builds_typed_ast():
    assert parse("Guest.Name") == Path("Guest.Name")
    assert parse("'a'") == Literal("a")
    assert parse("42") == Literal(42)
    assert parse("-1.5") == Literal(-1.5, constant=False)
    assert parse("true") == Literal(True)
    assert parse("null") == Literal(None)
    assert parse("a == 'x'") == Compare("==", Path("a"), Literal("x"))
    assert parse("!a") == Not(Path("a"))
    assert parse("['x', 1]") == ListLiteral((Literal("x"), Literal(1)))
    assert parse("contains(a, 'b')") == Call("contains", (Path("a"), Literal("b")))


def test_and_binds_tighter_than_or():
    assert parse("a || b && c") == Or((Path("a"), And((Path("b"), Path("c")))))


def test_long_chains_are_flat():
    assert parse("a || b || c || d") == Or((Path("a"), Path("b"), Path("c"), Path("d")))
    assert parse("a && b && c") == And((Path("a"), Path("b"), Path("c")))


def test_not_binds_tightest_as_in_adaptive_expressions():
    assert parse("!(a == 'IT')") == Not(Compare("==", Path("a"), Literal("IT")))
    assert parse("(!a) == true") == Compare("==", Not(Path("a")), Literal(True))
    assert parse("!a && b") == And((Not(Path("a")), Path("b")))
    assert parse("not(a)") == Call("not", (Path("a"),))


def test_parentheses_override_precedence():
    assert parse("(a || b) && c") == And((Or((Path("a"), Path("b"))), Path("c")))


def test_keywords_allowed_after_a_dot():
    assert parse("Answers.in.or") == Path("Answers.in.or")


def test_paths_lists_every_name_read():
    expr = parse("exists(A.B) && (toLower(C) == 'x' || contains([E, 'y'], D)) && !F")
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
        ("toLower(Guest.Name) == 'ada'", True),
        ("toUpper(Guest.Name)", "ADA"),
        ("toLower(Answers.Count)", None),  # not text: no value (the load check refuses it)
        ("toLower(Missing)", None),
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
        ("'B' < 'a'", True),  # by code unit, as JavaScript
        ("'a' < 3", False),  # unlike types: false (the load check refuses them)
        ("'a' >= 3", False),
        ("Answers.Sum == 0.3", True),  # 0.1 + 0.2: within machine epsilon, as in JavaScript
        ("Answers.Count == 3.0000000000000004", False),  # two epsilons away
        ("Missing < 3", False),
        ("Missing > 3", False),
        ("Answers.Urgent > 0", False),
        ("Missing == null", True),
        ("Answers.Blank == null", False),
        ("contains(['IT', 'HR'], Answers.Dept)", True),
        ("contains(['it', 'HR'], Answers.Dept)", False),
        ("contains([1, 2, 3], Answers.Count)", True),
        ("contains(['3'], Answers.Count)", False),
        ("contains([], Missing)", False),
        ("contains([null], Missing)", True),
        ("contains([Guest.Name, 'IT'], Answers.Dept)", True),
        ("exists(Guest.Name)", True),
        ("exists(Answers.Blank)", True),
        ("exists(Answers.None)", False),
        ("exists(Missing)", False),
        ("empty(Missing)", True),
        ("empty(Answers.Blank)", True),
        ("empty(Answers.Spaces)", False),  # only "" is empty text
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
        ("not(true)", False),
        ("!!Guest.Name", True),
        ("!Answers.Blank", False),  # only false and null are false
        ("!Answers.Zero", False),
        ("!Missing", True),
        ("Answers.Zero || Answers.Blank", True),
        ("Answers.Urgent && Answers.Zero", True),
        ("false || Missing", None),  # nothing true: the last value
        ("false || false", False),
        ("'it\\'s' == \"it's\"", True),
        ("'a\\nb'", "a\nb"),
        ("'\\u00e9'", "\\u00e9"),  # kept as written, as Adaptive Expressions does
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
    assert ev("contains(Y, 'a') || toLower(X) == 1", values) is False


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, False), (False, False), ("", True), (0, True), (0.0, True), ([], True),
        ({}, True), ("0", True), ("false", True), (1, True), (True, True),
    ],
)
def test_logic_true_is_adaptive_expressions_truth(value, expected):
    assert logic_true(value) is expected


@pytest.mark.parametrize("value", [None, False, "", 0, 1, "true", [True], "x"])
def test_is_true_is_only_the_boolean(value):
    assert is_true(value) is False
    assert is_true(True) is True


@pytest.mark.parametrize(
    ("value", "text"),
    [(None, ""), (True, "true"), (False, "false"), (3.0, "3"), (2.5, "2.5"), (7, "7"),
     (["a", 1, None], "a,1,"), ({"k": "v"}, '{"k": "v"}'), ("x", "x"),
     # JavaScript's notation: plain up to 1e21, exponents from there and below 1e-6
     (1e20, "100000000000000000000"), (1e21, "1e+21"), (1.5e-7, "1.5e-7"), (1e-6, "0.000001"),
     (-0.5, "-0.5"), (123.456, "123.456"), (10**22, "1e+22"), (0.1 + 0.2, "0.30000000000000004")],
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
        ("a + 1", 2, "unexpected character '+': arithmetic is not supported"),
        ("a ? b : c", 2, "unexpected character '?': ?: and ?? are not supported"),
        ("a <> b", 2, "unexpected '<>' (use !=)"),
        ("'open", 0, "unterminated string"),
        ("(a", 2, "expected ')', found end of expression"),
        ("a b", 2, "unexpected 'b'"),
        ("a.", 2, "expected a name after '.', found end of expression"),
        ("a.1", 2, "expected a name after '.', found 1"),
        ("3abc", 0, "bad number '3a'"),
        ("a in ['x']", 2, "'in' is not part of Adaptive Card templating: write "
                          "contains(['a', 'b'], x)"),
        ("a and b", 2, "write &&, not 'and'"),
        ("a or b", 2, "write ||, not 'or'"),
        ("not a", 0, "write !x or not(x)"),
        ("!a == 'IT'", 0, "'!' applies to the value right after it, so this compares true or "
                          "false with the other side: write !(... == ...) or use !="),
        ("a < b < c", 6, "comparisons cannot be chained; join them with &&"),
        ("a == b != c", 7, "comparisons cannot be chained; join them with &&"),
        ("eval('1')", 0, "unknown function 'eval' (known: contains, empty, exists, not, "
                         "toLower, toUpper)"),
        ("lower(a)", 0, "Adaptive Card templating calls it toLower(), not lower()"),
        ("upper(a)", 0, "Adaptive Card templating calls it toUpper(), not upper()"),
        ("1234567890123456", 0, "numbers are limited to 15 digits before the point"),
        ("Guest.__class__()", 15, "unexpected '('"),
        ("toLower()", 0, "toLower() takes 1 argument, got 0"),
        ("contains(a)", 0, "contains() takes 2 arguments, got 1"),
        ("empty(a, b)", 0, "empty() takes 1 argument, got 2"),
        ("exists('x')", 0, "exists() takes a metadata name like Guest.Name"),
        ("x == and", 5, "write &&, not 'and'"),
        ("[1, ]", 4, "expected a value, found ']'"),
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
    for hostile in ("!" * 200 + "a", "[" * 200, "toLower(" * 200 + "a" + ")" * 200):
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


def test_format_value_does_not_depend_on_the_decimal_context():
    import decimal

    with decimal.localcontext() as context:
        context.prec = 5  # another library may lower it: our numbers must not follow
        assert format_value(0.1 + 0.2) == "0.30000000000000004"
        assert format_value(123456.789) == "123456.789"
