"""A whole number a person typed, read with a bound.

Python's `int()` refuses a string of over 4,300 digits (ValueError) and is quadratic below
that limit, and a guest or an agent can type either. Here a number with more digits than
the range's largest is out of range without ever being converted.

Shared by the pipelines' actions, the agent desk and the admin's simulator, so it lives
here (pipelines/ imports nothing from bots/ or admin/).
"""

from __future__ import annotations

import unicodedata


def whole_number(text: str, low: int, high: int) -> int | None:
    """The number `text` spells if it lies in [low, high], else None (an empty range: None).

    `text` is decimal digits only: no sign, space or separator. Any script's decimal digits
    count, as `int()` reads them ("٣" is 3, "²" is not a digit); leading zeros are allowed.
    """
    if not text or not text.isdecimal():
        return None
    # isdecimal() is true exactly for characters with a decimal value
    significant = "".join(str(unicodedata.decimal(c)) for c in text).lstrip("0") or "0"
    if len(significant) > len(str(abs(high))):
        return None
    value = int(significant)
    return value if low <= value <= high else None
