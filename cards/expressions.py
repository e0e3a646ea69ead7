"""A small, safe expression language for card `$when`, `${...}` bindings and pipeline conditions.

Why hand-written: the only Python implementation of the Adaptive Card templating language
evaluates with `eval()`, and templates are bound with text that guests typed. This language has
no `eval`, no attribute access and no way to reach a Python object: an expression is parsed into
a small typed AST and evaluated against a flat mapping of dotted metadata names.

Grammar (lowest precedence first)::

    or_expr    := and_expr (("||" | "or") and_expr)*
    and_expr   := not_expr (("&&" | "and") not_expr)*
    not_expr   := ("!" | "not") not_expr | comparison
    comparison := primary [("==" | "!=" | "<" | "<=" | ">" | ">=") primary | "in" list]
    primary    := literal | path | call | list | "(" or_expr ")"
    list       := "[" [or_expr ("," or_expr)* [","]] "]"
    call       := name "(" [or_expr ("," or_expr)*] ")"
    path       := ident ("." ident)*

`!` binds looser than comparisons (as Python's `not`), so `!Answers.Dept == 'IT'` means
"the department is not IT" rather than the always-false `(!Answers.Dept) == 'IT'`.
Comparisons do not chain (`a < b < c` is an error). Evaluation never raises.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

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
    "In",
    "ListLiteral",
    "Literal",
    "Not",
    "Or",
    "Path",
    "format_value",
    "parse",
    "truthy",
]


class ExpressionError(ValueError):
    """Bad syntax, unknown function, wrong arity or a limit hit; `position` is a 0-based offset."""

    def __init__(self, message: str, position: int, text: str = "") -> None:
        super().__init__(f"{message} at column {position + 1}" + (f" in {text!r}" if text else ""))
        self.message = message
        self.position = position
        self.text = text


def truthy(value: Any) -> bool:
    """None, "", 0, False and empty lists/dicts are false; everything else is true."""
    if value is None or value is False:
        return False
    if isinstance(value, int | float | str | list | tuple | dict):
        return bool(value)
    return True


# ---------------------------------------------------------------------------- values


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _equal(a: Any, b: Any) -> bool:
    """Equality without coercion: `true != 1`, `'1' != 1`, but `1 == 1.0`."""
    if _is_number(a) and _is_number(b):
        return a == b
    if type(a) is not type(b) and not (isinstance(a, list | tuple) and isinstance(b, list | tuple)):
        return False
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def _order(op: str, a: Any, b: Any) -> bool:
    """Ordering of two numbers or two strings; any other pair is simply False."""
    if not ((_is_number(a) and _is_number(b)) or (isinstance(a, str) and isinstance(b, str))):
        return False
    if op == "<":
        return a < b
    if op == "<=":
        return a <= b
    if op == ">":
        return a > b
    return a >= b


def _empty(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, list | tuple | dict):
        return not value
    return False


def _lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


def _upper(value: Any) -> Any:
    return value.upper() if isinstance(value, str) else value


def _contains(haystack: Any, needle: Any) -> bool:
    if isinstance(haystack, str):
        return isinstance(needle, str) and needle in haystack
    if isinstance(haystack, list | tuple):
        return any(_equal(item, needle) for item in haystack)
    return False


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
        return not truthy(self.operand.evaluate(values))

    def children(self) -> Sequence[Expression]:
        return (self.operand,)


@dataclass(frozen=True)
class And(Expression):
    """n-ary, so a long `a && b && ...` chain stays shallow to evaluate."""

    operands: tuple[Expression, ...]

    def evaluate(self, values: Mapping[str, Any]) -> Any:
        return all(truthy(op.evaluate(values)) for op in self.operands)

    def children(self) -> Sequence[Expression]:
        return self.operands


@dataclass(frozen=True)
class Or(Expression):
    operands: tuple[Expression, ...]

    def evaluate(self, values: Mapping[str, Any]) -> Any:
        return any(truthy(op.evaluate(values)) for op in self.operands)

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
            return _equal(a, b)
        if self.op == "!=":
            return not _equal(a, b)
        return _order(self.op, a, b)

    def children(self) -> Sequence[Expression]:
        return (self.left, self.right)


@dataclass(frozen=True)
class In(Expression):
    item: Expression
    options: ListLiteral

    def evaluate(self, values: Mapping[str, Any]) -> Any:
        return _contains(self.options.evaluate(values), self.item.evaluate(values))

    def children(self) -> Sequence[Expression]:
        return (self.item, self.options)


@dataclass(frozen=True)
class Call(Expression):
    name: str
    args: tuple[Expression, ...]

    def evaluate(self, values: Mapping[str, Any]) -> Any:
        if self.name == "exists":
            arg = self.args[0]
            return isinstance(arg, Path) and values.get(arg.name) is not None
        return _FUNCTIONS[self.name][1](*(a.evaluate(values) for a in self.args))

    def children(self) -> Sequence[Expression]:
        return self.args


# name -> (arity, implementation); `exists` looks at its path itself.
_FUNCTIONS: dict[str, tuple[int, Callable[..., Any]]] = {
    "exists": (1, lambda _: False),
    "empty": (1, _empty),
    "lower": (1, _lower),
    "upper": (1, _upper),
    "contains": (2, _contains),
}

# ---------------------------------------------------------------------------- tokenizer


@dataclass(frozen=True)
class _Token:
    kind: str  # op, ident, str, num, end
    value: Any
    pos: int


_KEYWORDS = {"and": "&&", "or": "||", "not": "!", "in": "in"}
_CONSTANTS = {"true": True, "false": False, "null": None}
_OPERATORS = ("==", "!=", "<=", ">=", "&&", "||", "<", ">", "!", "(", ")", "[", "]", ",", ".", "-")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", "'": "'", '"': '"', "/": "/"}


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c.isspace():
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
                hint = {"=": " (use == to compare)", "&": " (use &&)", "|": " (use ||)"}.get(c, "")
                raise ExpressionError(f"unexpected character {c!r}{hint}", i)
            tokens.append(_Token("op", op, i))
            i += len(op)
    tokens.append(_Token("end", None, n))
    return tokens


def _number(text: str, i: int, tokens: list[_Token]) -> int:
    j = i
    while j < len(text) and text[j].isascii() and text[j].isdigit():
        j += 1
    is_float = j + 1 < len(text) and text[j] == "." and text[j + 1].isdigit()
    if is_float:
        j += 1
        while j < len(text) and text[j].isascii() and text[j].isdigit():
            j += 1
    if j < len(text) and (text[j].isalpha() or text[j] == "_"):
        raise ExpressionError(f"bad number {text[i:j + 1]!r}", i)
    tokens.append(_Token("num", float(text[i:j]) if is_float else int(text[i:j]), i))
    return j


def _string(text: str, i: int, tokens: list[_Token]) -> int:
    quote, j, out = text[i], i + 1, []
    while j < len(text):
        c = text[j]
        if c == quote:
            tokens.append(_Token("str", "".join(out), i))
            return j + 1
        if c == "\\":
            esc = text[j + 1 : j + 2]
            if esc == "u" and len(text[j + 2 : j + 6]) == 4:
                try:
                    out.append(chr(int(text[j + 2 : j + 6], 16)))
                except ValueError:
                    raise ExpressionError("bad \\u escape", j) from None
                j += 6
                continue
            if esc not in _ESCAPES:
                raise ExpressionError(f"unknown escape \\{esc}", j)
            out.append(_ESCAPES[esc])
            j += 2
            continue
        out.append(c)
        j += 1
    raise ExpressionError("unterminated string", i)


# ---------------------------------------------------------------------------- parser


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokenize(text)
        self.i = 0
        self.depth = 0

    @property
    def tok(self) -> _Token:
        return self.tokens[self.i]

    def _is(self, *ops: str) -> bool:
        t = self.tok
        return (t.kind == "op" and t.value in ops) or (
            t.kind == "ident" and _KEYWORDS.get(t.value) in ops
        )

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

    def parse(self) -> Expression:
        expr = self.or_expr()
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
        operands = [self.not_expr()]
        while self._is("&&"):
            self._take()
            operands.append(self.not_expr())
        return operands[0] if len(operands) == 1 else And(tuple(operands))

    def not_expr(self) -> Expression:
        if self._is("!"):
            self._nest(self._take().pos)
            operand = self.not_expr()
            self.depth -= 1
            return Not(operand)
        return self.comparison()

    def comparison(self) -> Expression:
        left = self.primary()
        if self._is("==", "!=", "<", "<=", ">", ">="):
            op = self._take().value
            result: Expression = Compare(op, left, self.primary())
        elif self._is("in"):
            self._take()
            if not self._is("["):
                raise ExpressionError(
                    f"'in' needs a list like ['a', 'b'], found {_describe(self.tok)}", self.tok.pos
                )
            result = In(left, self.list_literal())
        else:
            return left
        if self._is("==", "!=", "<", "<=", ">", ">=", "in"):
            raise ExpressionError("comparisons cannot be chained; join them with &&", self.tok.pos)
        return result

    def primary(self) -> Expression:
        t = self.tok
        if t.kind in ("str", "num"):
            self._take()
            return Literal(t.value)
        if self._is("-"):
            self._take()
            if self.tok.kind != "num":
                raise ExpressionError("'-' must be followed by a number", t.pos)
            return Literal(-self._take().value)
        if self._is("("):
            self._nest(self._take().pos)
            expr = self.or_expr()
            self._expect(")", "')'")
            self.depth -= 1
            return expr
        if self._is("["):
            return self.list_literal()
        if t.kind == "ident" and t.value not in _KEYWORDS:
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
        self._expect("]", "',' or ']'")
        self.depth -= 1
        return ListLiteral(tuple(items))

    def name(self) -> Expression:
        start = self._take()
        if start.value in _CONSTANTS:
            return Literal(_CONSTANTS[start.value])
        if self._is("("):
            return self.call(start)
        parts = [start.value]
        while self._is("."):
            self._take()
            if self.tok.kind != "ident":
                raise ExpressionError(f"expected a name after '.', found {_describe(self.tok)}",
                                      self.tok.pos)
            parts.append(self._take().value)
        return Path(".".join(parts))

    def call(self, name: _Token) -> Expression:
        if name.value not in _FUNCTIONS:
            known = ", ".join(sorted(_FUNCTIONS))
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
        arity = _FUNCTIONS[name.value][0]
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
    if not text.strip():
        raise ExpressionError("empty expression", 0)
    try:
        return _Parser(text).parse()
    except ExpressionError as e:
        raise ExpressionError(e.message, e.position, text if len(text) <= 200 else "") from None


def format_value(value: Any) -> str:
    """Text for a value inside a string: None -> "", True -> "true", 3.0 -> "3"."""
    if value is None:
        return ""
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, float):
        if math.isfinite(value) and value.is_integer() and abs(value) < 1e16:
            return str(int(value))
        return repr(value)
    if isinstance(value, list | tuple):
        return ", ".join(format_value(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False, default=str)
    return str(value)
