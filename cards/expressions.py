"""The expression language of `${...}`, `$when` and pipeline conditions: a subset of Microsoft's
Adaptive Expressions (the language of Adaptive Card Templating), with the same results.

Why hand-written: the only Python implementation of Adaptive Card templating evaluates with
`eval()`, and templates are bound with text that guests typed. This one has no `eval`, no
attribute access and no way to reach a Python object: an expression is parsed into a small
typed AST and evaluated against a flat mapping of dotted metadata names.

The subset (lowest precedence first, as Adaptive Expressions orders it)::

    or_expr    := and_expr ("||" and_expr)*
    and_expr   := comparison ("&&" comparison)*
    comparison := unary [("==" | "!=" | "<" | "<=" | ">" | ">=") unary]
    unary      := "!" unary | "-" number | primary
    primary    := literal | path | call | list | "(" or_expr ")"
    list       := "[" [or_expr ("," or_expr)*] "]"
    call       := name "(" [or_expr ("," or_expr)*] ")"
    path       := ident ("." ident)*

Functions: exists, empty, toLower, toUpper, contains, not. What Adaptive Expressions reads
differently, or not at all, is refused with a reason: `and`/`or`/`not x` words, `in [...]`,
`lower()`/`upper()`, chained comparisons, `!x == y` without parentheses (there `!` applies to
`x` alone), arithmetic, `?:`, `??`, objects. Evaluation follows Adaptive Expressions
(`tests/test_templating_conformance.py` runs both): only `false` and null are false for
`!`, `&&` and `||`; `||` of nothing true gives its last value; `==` is strict but `1 == 1.0`;
ordering compares two numbers or two strings (UTF-16 order), anything else is false; text
compares case-sensitively. Evaluation never raises. A missing name and a null one are both None.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cards.expression_values import (
    contains,
    empty,
    equal,
    format_value,
    is_true,
    logic_true,
    order,
    to_lower,
    to_upper,
)

MAX_LENGTH = 2000
MAX_DEPTH = 50

__all__ = [
    "MAX_DEPTH",
    "MAX_LENGTH",
    "And",
    "Call",
    "Compare",
    "Expression",
    "ExpressionError",
    "ListLiteral",
    "Literal",
    "Not",
    "Or",
    "Path",
    "format_value",
    "is_true",
    "logic_true",
    "parse",
]


class ExpressionError(ValueError):
    """Bad syntax, unknown function, wrong arity or a limit hit; `position` is a 0-based offset."""

    def __init__(self, message: str, position: int, text: str = "") -> None:
        super().__init__(f"{message} at column {position + 1}" + (f" in {text!r}" if text else ""))
        self.message = message
        self.position = position
        self.text = text


# ---------------------------------------------------------------------------- AST


class Expression:
    """A parsed expression: evaluate it against metadata, or list the paths it reads."""

    def evaluate(self, values: Mapping[str, Any]) -> Any:
        raise NotImplementedError

    def children(self) -> Sequence[Expression]:
        return ()

    def paths(self) -> frozenset[str]:
        """Every metadata name the expression reads (to check templates against known keys)."""
        found: set[str] = set()
        stack: list[Expression] = [self]
        while stack:
            node = stack.pop()
            if isinstance(node, Path):
                found.add(node.name)
            stack.extend(node.children())
        return frozenset(found)


@dataclass(frozen=True)
class Literal(Expression):
    value: str | int | float | bool | None
    # written as a literal (`'x'`, `12`): a `${...}` of only that is text in Microsoft's engine;
    # `-1.5` is an expression there, so it keeps its type
    constant: bool = True

    def evaluate(self, values: Mapping[str, Any]) -> Any:
        return self.value


@dataclass(frozen=True)
class Path(Expression):
    name: str

    def evaluate(self, values: Mapping[str, Any]) -> Any:
        return values.get(self.name)


@dataclass(frozen=True)
class ListLiteral(Expression):
    items: tuple[Expression, ...]

    def evaluate(self, values: Mapping[str, Any]) -> Any:
        return [item.evaluate(values) for item in self.items]

    def children(self) -> Sequence[Expression]:
        return self.items


@dataclass(frozen=True)
class Not(Expression):
    operand: Expression

    def evaluate(self, values: Mapping[str, Any]) -> Any:
        return not logic_true(self.operand.evaluate(values))

    def children(self) -> Sequence[Expression]:
        return (self.operand,)


@dataclass(frozen=True)
class And(Expression):
    """n-ary, so a long `a && b && ...` chain stays shallow to evaluate."""

    operands: tuple[Expression, ...]

    def evaluate(self, values: Mapping[str, Any]) -> Any:
        return all(logic_true(op.evaluate(values)) for op in self.operands)

    def children(self) -> Sequence[Expression]:
        return self.operands


@dataclass(frozen=True)
class Or(Expression):
    """True if any operand is; otherwise the last operand's value (false or null)."""

    operands: tuple[Expression, ...]

    def evaluate(self, values: Mapping[str, Any]) -> Any:
        last: Any = False
        for op in self.operands:
            last = op.evaluate(values)
            if logic_true(last):
                return True
        return last if last is None else False

    def children(self) -> Sequence[Expression]:
        return self.operands


@dataclass(frozen=True)
class Compare(Expression):
    op: str
    left: Expression
    right: Expression

    def evaluate(self, values: Mapping[str, Any]) -> Any:
        a, b = self.left.evaluate(values), self.right.evaluate(values)
        if self.op == "==":
            return equal(a, b)
        if self.op == "!=":
            return not equal(a, b)
        return order(self.op, a, b)

    def children(self) -> Sequence[Expression]:
        return (self.left, self.right)


@dataclass(frozen=True)
class Call(Expression):
    name: str
    args: tuple[Expression, ...]

    def evaluate(self, values: Mapping[str, Any]) -> Any:
        if self.name == "exists":
            return self.args[0].evaluate(values) is not None
        return FUNCTIONS[self.name][1](*(a.evaluate(values) for a in self.args))

    def children(self) -> Sequence[Expression]:
        return self.args


# name -> (arity, implementation); `exists` evaluates its path itself.
FUNCTIONS: dict[str, tuple[int, Callable[..., Any]]] = {
    "contains": (2, contains),
    "empty": (1, empty),
    "exists": (1, lambda _: False),
    "not": (1, lambda value: not logic_true(value)),
    "toLower": (1, to_lower),
    "toUpper": (1, to_upper),
}
# what people write that Adaptive Expressions calls otherwise
_RENAMED = {"lower": "toLower", "upper": "toUpper", "lowercase": "toLower",
            "uppercase": "toUpper"}

# ---------------------------------------------------------------------------- tokenizer


@dataclass(frozen=True)
class _Token:
    kind: str  # op, ident, str, num, end
    value: Any
    pos: int


_CONSTANTS = {"true": True, "false": False, "null": None}
_OPERATORS = ("==", "!=", "<=", ">=", "&&", "||", "<", ">", "!", "(", ")", "[", "]", ",", ".", "-")
_REFUSED = {
    "=": " (use == to compare)",
    "&": " (use &&)",
    "|": " (use ||)",
    "+": ": arithmetic is not supported",
    "*": ": arithmetic is not supported",
    "/": ": arithmetic is not supported",
    "%": ": arithmetic is not supported",
    "^": ": arithmetic is not supported",
    "?": ": ?: and ?? are not supported",
    ":": ": ?: is not supported",
    "{": ": objects are not supported",
    "}": ": objects are not supported",
}
_SPACES = " \t\ufeff\u00a0\r\n"  # what Adaptive Expressions skips between tokens
_ESCAPE = re.compile(r"\\[^\r\n]?")
_ESCAPES = {"\\r": "\r", "\\n": "\n", "\\t": "\t", "\\\\": "\\"}


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c in _SPACES:
            i += 1
        elif c.isascii() and (c.isalpha() or c == "_"):
            j = i + 1
            while j < n and text[j].isascii() and (text[j].isalnum() or text[j] == "_"):
                j += 1
            tokens.append(_Token("ident", text[i:j], i))
            i = j
        elif c.isascii() and c.isdigit():
            i = _number(text, i, tokens)
        elif c in "'\"":
            i = _string(text, i, tokens)
        else:
            op = next((o for o in _OPERATORS if text.startswith(o, i)), None)
            if op is None:
                raise ExpressionError(f"unexpected character {c!r}{_REFUSED.get(c, '')}", i)
            if op == "<" and text.startswith("<>", i):
                raise ExpressionError("unexpected '<>' (use !=)", i)
            tokens.append(_Token("op", op, i))
            i += len(op)
    tokens.append(_Token("end", None, n))
    return tokens


def _number(text: str, i: int, tokens: list[_Token]) -> int:
    j = i
    while j < len(text) and text[j].isascii() and text[j].isdigit():
        j += 1
    if j - i > 15:  # beyond that JavaScript's numbers are not exact (and int() is costly)
        raise ExpressionError("numbers are limited to 15 digits before the point", i)
    is_float = j + 1 < len(text) and text[j] == "." and text[j + 1].isascii() \
        and text[j + 1].isdigit()
    if is_float:
        j += 1
        while j < len(text) and text[j].isascii() and text[j].isdigit():
            j += 1
    if j < len(text) and (text[j].isalpha() or text[j] == "_"):
        raise ExpressionError(f"bad number {text[i:j + 1]!r}", i)
    value = float(text[i:j])
    tokens.append(_Token("num", int(value) if value.is_integer() and not is_float else value, i))
    return j


def _string(text: str, i: int, tokens: list[_Token]) -> int:
    """A quoted string, read as Adaptive Expressions reads it: `\\'` (or `\\"`) is the quote,
    `\\n`, `\\r`, `\\t` and `\\\\` are escapes, any other backslash stays as it is."""
    quote, j = text[i], i + 1
    while j < len(text):
        c = text[j]
        if c == "\\" and text[j + 1 : j + 2] in (quote, "\\"):
            j += 2
            continue
        if c == quote:
            raw = text[i + 1 : j].replace("\\" + quote, quote)
            value = _ESCAPE.sub(lambda m: _ESCAPES.get(m.group(0), m.group(0)), raw)
            tokens.append(_Token("str", value, i))
            return j + 1
        j += 1
    raise ExpressionError("unterminated string", i)


# ---------------------------------------------------------------------------- parser

_COMPARISONS = ("==", "!=", "<", "<=", ">", ">=")


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokenize(text)
        self.i = 0
        self.depth = 0

    @property
    def tok(self) -> _Token:
        return self.tokens[self.i]

    def _is(self, *ops: str) -> bool:
        return self.tok.kind == "op" and self.tok.value in ops

    def _take(self) -> _Token:
        t = self.tok
        self.i += 1
        return t

    def _expect(self, op: str, what: str) -> _Token:
        if not self._is(op):
            raise ExpressionError(f"expected {what}, found {_describe(self.tok)}", self.tok.pos)
        return self._take()

    def _nest(self, pos: int) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ExpressionError(f"expression nested deeper than {MAX_DEPTH} levels", pos)

    def _refuse_words(self) -> None:
        t = self.tok
        if t.kind != "ident":
            return
        if t.value in ("and", "or"):
            symbol = "&&" if t.value == "and" else "||"
            raise ExpressionError(f"write {symbol}, not {t.value!r}", t.pos)
        if t.value == "in":
            raise ExpressionError(
                "'in' is not part of Adaptive Card templating: write contains(['a', 'b'], x)",
                t.pos)

    def parse(self) -> Expression:
        expr = self.or_expr()
        self._refuse_words()
        if self.tok.kind != "end":
            raise ExpressionError(f"unexpected {_describe(self.tok)}", self.tok.pos)
        return expr

    def or_expr(self) -> Expression:
        operands = [self.and_expr()]
        while self._is("||"):
            self._take()
            operands.append(self.and_expr())
        return operands[0] if len(operands) == 1 else Or(tuple(operands))

    def and_expr(self) -> Expression:
        operands = [self.comparison()]
        while self._is("&&"):
            self._take()
            operands.append(self.comparison())
        return operands[0] if len(operands) == 1 else And(tuple(operands))

    def comparison(self) -> Expression:
        start = self.tok
        left = self.unary()
        self._refuse_words()
        if not self._is(*_COMPARISONS):
            return left
        op_token = self._take()
        if start.kind == "op" and start.value == "!" and isinstance(left, Not):
            raise ExpressionError(
                f"'!' applies to the value right after it, so this compares true or false with "
                f"the other side: write !(... {op_token.value} ...) or use !=", start.pos)
        result = Compare(op_token.value, left, self.unary())
        self._refuse_words()
        if self._is(*_COMPARISONS):
            raise ExpressionError("comparisons cannot be chained; join them with &&", self.tok.pos)
        return result

    def unary(self) -> Expression:
        t = self.tok
        if self._is("!"):
            self._nest(self._take().pos)
            operand = self.unary()
            self.depth -= 1
            return Not(operand)
        if self._is("-"):
            self._take()
            if self.tok.kind != "num":
                raise ExpressionError("'-' must be followed by a number", t.pos)
            return Literal(-self._take().value, constant=False)
        return self.primary()

    def primary(self) -> Expression:
        t = self.tok
        if t.kind in ("str", "num"):
            self._take()
            return Literal(t.value)
        if self._is("("):
            self._nest(self._take().pos)
            expr = self.or_expr()
            self._expect(")", "')'")
            self.depth -= 1
            return expr
        if self._is("["):
            return self.list_literal()
        if t.kind == "ident":
            self._refuse_words()
            return self.name()
        raise ExpressionError(f"expected a value, found {_describe(t)}", t.pos)

    def list_literal(self) -> ListLiteral:
        self._nest(self._take().pos)
        items: list[Expression] = []
        while not self._is("]"):
            items.append(self.or_expr())
            if not self._is(","):
                break
            self._take()
            if self._is("]"):
                raise ExpressionError("expected a value, found ']'", self.tok.pos)
        self._expect("]", "',' or ']'")
        self.depth -= 1
        return ListLiteral(tuple(items))

    def name(self) -> Expression:
        start = self._take()
        if self._is("("):
            return self.call(start)
        if start.value == "not":
            raise ExpressionError("write !x or not(x)", start.pos)
        if start.value in _CONSTANTS:
            return Literal(_CONSTANTS[start.value])
        parts = [start.value]
        while self._is("."):
            self._take()
            if self.tok.kind != "ident":
                raise ExpressionError(f"expected a name after '.', found {_describe(self.tok)}",
                                      self.tok.pos)
            parts.append(self._take().value)
        return Path(".".join(parts))

    def call(self, name: _Token) -> Expression:
        if name.value not in FUNCTIONS:
            if name.value in _RENAMED:
                raise ExpressionError(
                    f"Adaptive Card templating calls it {_RENAMED[name.value]}(), "
                    f"not {name.value}()", name.pos)
            known = ", ".join(sorted(FUNCTIONS))
            raise ExpressionError(f"unknown function {name.value!r} (known: {known})", name.pos)
        self._nest(self._take().pos)
        args: list[Expression] = []
        while not self._is(")"):
            args.append(self.or_expr())
            if not self._is(","):
                break
            self._take()
        self._expect(")", "',' or ')'")
        self.depth -= 1
        arity = FUNCTIONS[name.value][0]
        if len(args) != arity:
            plural = "s" if arity != 1 else ""
            raise ExpressionError(
                f"{name.value}() takes {arity} argument{plural}, got {len(args)}", name.pos
            )
        if name.value == "exists" and not isinstance(args[0], Path):
            raise ExpressionError("exists() takes a metadata name like Guest.Name", name.pos)
        return Call(name.value, tuple(args))


def _describe(t: _Token) -> str:
    if t.kind == "end":
        return "end of expression"
    if t.kind == "str":
        return "a string"
    return repr(t.value)


@functools.lru_cache(maxsize=2048)
def parse(text: str) -> Expression:
    """Parse `text`; raise ExpressionError with the position. Results are immutable and cached."""
    if len(text) > MAX_LENGTH:
        raise ExpressionError(f"expression longer than {MAX_LENGTH} characters", MAX_LENGTH, "")
    if not text.strip(_SPACES):
        raise ExpressionError("empty expression", 0)
    try:
        return _Parser(text).parse()
    except ExpressionError as e:
        raise ExpressionError(e.message, e.position, text if len(text) <= 200 else "") from None
