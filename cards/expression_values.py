"""The values of the expression language, as Adaptive Expressions has them: truth, equality,
order, the functions, and how a value is written as text.

Why apart from the parser: these are the rules the conformance test pins down against
Microsoft's engine (tests/test_templating_conformance.py), in one place.
"""

from __future__ import annotations

import json
import math
from decimal import Decimal
from typing import Any

__all__ = [
    "contains",
    "empty",
    "equal",
    "format_value",
    "is_true",
    "js_number",
    "logic_true",
    "order",
    "to_lower",
    "to_upper",
]


def logic_true(value: Any) -> bool:
    """Adaptive Expressions' truth: only false and null are false ("" and 0 are true)."""
    if isinstance(value, bool):
        return value
    return value is not None


def is_true(value: Any) -> bool:
    """What `$when` and a condition's branch need: the boolean true, nothing else."""
    return value is True


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def equal(a: Any, b: Any) -> bool:
    """Adaptive Expressions' `==`: null only equals null, lists item by item, numbers within
    machine epsilon, anything else strictly (`'3' != 3`, `true != 1`)."""
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(equal(x, y) for x, y in zip(a, b, strict=True))
    if _is_number(a) and _is_number(b):
        return a == b or abs(a - b) < 2.220446049250313e-16
    if type(a) is not type(b) and not (_is_number(a) and _is_number(b)):
        return False
    return bool(a == b)


def _utf16(text: str) -> bytes:
    """JavaScript compares strings by UTF-16 code units; so do we."""
    return text.encode("utf-16-be", "surrogatepass")


def order(op: str, a: Any, b: Any) -> bool:
    """Two numbers or two strings; any other pair (null included) is simply false."""
    if _is_number(a) and _is_number(b):
        pass
    elif isinstance(a, str) and isinstance(b, str):
        a, b = _utf16(a), _utf16(b)
    else:
        return False
    if op == "<":
        return a < b
    if op == "<=":
        return a <= b
    if op == ">":
        return a > b
    return a >= b


def empty(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, str | list | tuple | dict):
        return len(value) == 0
    return False


def to_lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else None


def to_upper(value: Any) -> Any:
    return value.upper() if isinstance(value, str) else None


def contains(haystack: Any, needle: Any) -> bool:
    if isinstance(haystack, str):
        return isinstance(needle, str) and needle in haystack
    if isinstance(haystack, list | tuple):
        return any(equal(item, needle) for item in haystack)
    return False


def format_value(value: Any) -> str:
    """A value as text, as JavaScript's String() writes it (what Microsoft's engine puts in a
    longer text): None -> "", true -> "true", 3.0 -> "3", 1e21 -> "1e+21", lists joined by ","."""
    if value is None:
        return ""
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, float):
        return js_number(value)
    if isinstance(value, int):
        return js_number(float(value)) if abs(value) >= 10**21 else str(value)
    if isinstance(value, list | tuple):
        return ",".join(format_value(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False, default=str)
    return str(value)


def js_number(value: float) -> str:
    """ECMAScript Number::toString: the shortest digits that round-trip, in its notation."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    if value == 0:
        return "0"
    sign = "-" if value < 0 else ""
    # repr gives the shortest digits that round-trip; Decimal(text) reads them exactly (no
    # context rounding, unlike normalize(), which follows whatever precision is set)
    _, digits_tuple, exponent = Decimal(repr(abs(value))).as_tuple()
    all_digits = "".join(map(str, digits_tuple))
    digits = all_digits.rstrip("0") or "0"
    exponent = int(exponent) + len(all_digits) - len(digits)
    digits = digits.lstrip("0") or "0"
    k = len(digits)
    n = exponent + k  # the decimal point sits after n digits
    if k <= n <= 21:
        return sign + digits + "0" * (n - k)
    if 0 < n <= 21:
        return sign + digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return sign + "0." + "0" * (-n) + digits
    mantissa = digits[0] + ("." + digits[1:] if k > 1 else "")
    return f"{sign}{mantissa}e{'+' if n - 1 >= 0 else '-'}{abs(n - 1)}"
