"""How a message quotes a value it was given: as JSON spells it, so that a reader sees what was sent and
not Python's spelling of it (``true``, not ``True``; ``null``, not ``None``; ``"2"``, not ``'2'``), and a
number in full, never in exponent form (``1180591620717411303424``, not ``1.1805916207174113e+21``)."""

from __future__ import annotations

import json
import math
from decimal import Decimal

#: The longest quotation of a text, a list or an object; what is longer is cut and ends with '...'.
MAX_QUOTED = 80

#: Whole numbers up to here (96 bits) read from JSON as floats are shown with every digit (the value
#: sent, when it was an integer beyond 64 bits); larger ones with the shortest digits that read back.
EXACT_BELOW = 2**96


def plain_number(value: int | float) -> str:
    """A number in plain decimal notation: ``12``, ``2.0``, ``2.5``, ``0.0001``, ``1180591620717411303424``."""
    if isinstance(value, int):
        return str(value)
    if not math.isfinite(value):
        return json.dumps(value)  # NaN, Infinity, -Infinity
    if value.is_integer() and abs(value) < 2**64:
        return f"{int(value)}.0"  # written with a decimal point: JSON reads integers this size as integers
    if value.is_integer() and abs(value) < EXACT_BELOW:
        return str(int(value))
    return format(Decimal(repr(value)), "f")


def json_text(value: object) -> str:
    """``value`` (something read from JSON) as a message quotes it: JSON's spelling, numbers in plain
    decimal notation, texts, lists and objects cut after :data:`MAX_QUOTED` characters."""
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    if isinstance(value, int | float):
        return plain_number(value)
    text = json.dumps(value, ensure_ascii=False, separators=(", ", ": "), default=str)
    return text if len(text) <= MAX_QUOTED else text[: MAX_QUOTED - 3] + "..."
