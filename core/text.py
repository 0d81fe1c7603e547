"""Whole numbers typed into query strings, forms and headers.

``str.isdigit()`` is true for "²" and "١٢": the first makes ``int()`` raise (a 500 where the caller
trusted the check), the second is silently read as 12. Only ASCII digits are numbers here, and their
count is bounded so that the value fits a PostgreSQL ``bigint`` (18 digits < 2^63) and ``int()`` never
meets Python's conversion limit.
"""

from __future__ import annotations

import re

_ASCII_DIGITS = re.compile(r"[0-9]+", re.ASCII)


def ascii_int(text: object, *, max_digits: int = 18) -> int | None:
    """``text`` as a non-negative int if it is 1..``max_digits`` ASCII digits (no sign, no
    whitespace, no "_"); otherwise None. Leading zeros count toward ``max_digits``."""
    if not isinstance(text, str) or not 0 < len(text) <= max_digits:
        return None
    return int(text) if _ASCII_DIGITS.fullmatch(text) else None
