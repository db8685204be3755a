"""Pages of a list (``page``, ``page_size``) and the version 2 list envelope.

The rules are the contract's: 10 per page; in version 2 ``page_size`` may be 10, 25, 50 or 100 (anything
else is 10); a page below 1 is the first, one beyond the last is the last; a page that is not a number
means every item.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

DEFAULT_PAGE_SIZE = 10
PAGE_SIZES = (10, 25, 50, 100)


@dataclass(frozen=True, slots=True)
class Paging:
    """Which slice of ``total_items`` items a list answer holds (``start``:``end``, zero-based)."""

    total_items: int
    current_page: int
    max_page: int
    page_size: int
    start: int
    end: int

    @property
    def start_number(self) -> int:
        """One-based number of the first item shown (0 when there is none)."""
        return min(self.start + 1, self.total_items)

    @property
    def end_number(self) -> int:
        return min(self.end, self.total_items)

    def as_dict(self) -> dict[str, int]:
        return {
            "total_items": self.total_items, "current_page": self.current_page, "max_page": self.max_page,
            "start_number": self.start_number, "end_number": self.end_number, "page_size": self.page_size,
        }


def whole_number(value: object) -> int | None:
    """An int, or the text of one (sign allowed); None for anything else (booleans included)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        text = value.strip()
        digits = text[1:] if text[:1] in ("-", "+") else text
        if digits.isdigit() and digits.isascii():
            return int(text)
    return None


def paginate(total_items: int, page: str | int | None, page_size: str | int | None = None,
             version: int = 2) -> Paging:
    """The page asked for (raw ``page`` / ``page_size`` parameters as sent), clamped to what exists."""
    number = whole_number(page)
    if number is None:
        return Paging(total_items, 1, 1, total_items, 0, total_items)
    size = whole_number(page_size) if version >= 2 else None
    if size not in PAGE_SIZES:
        size = DEFAULT_PAGE_SIZE
    assert size is not None
    max_page = max(1, -(-total_items // size))
    current = min(max(number, 1), max_page)
    start = (current - 1) * size
    return Paging(total_items, current, max_page, size, start, min(start + size, total_items))


def envelope(data: Sequence[Any], paging: Paging, sorting: Sequence[str] | None,
             contents: Sequence[str] | None) -> dict[str, Any]:
    """The version 2 list answer: ``{"data", "_paging", "_sorting", "_contents"}``."""
    return {
        "data": list(data),
        "_paging": paging.as_dict(),
        "_sorting": list(sorting) if sorting is not None else None,
        "_contents": list(contents) if contents is not None else None,
    }
