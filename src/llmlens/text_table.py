"""Fixed-width text tables for the terminal: the `llmlens` commands and the demo print with this."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], right: Sequence[int] = ()) -> str:
    """A fixed-width text table; columns listed in `right` are right-aligned (numbers).

    Example:
        >>> print(table(["model", "calls"], [["gpt-4o-mini", 3]], right=[1]))
        model        calls
        -----------  -----
        gpt-4o-mini      3
    """
    cells = [[str(c) for c in headers]] + [["" if c is None else str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row: list[str]) -> str:
        return "  ".join(
            (cell.rjust(width) if i in right else cell.ljust(width))
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(cells[0]), rule, *(line(row) for row in cells[1:])])
