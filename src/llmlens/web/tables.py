"""HTML tables of the pages: a header row, body rows, an empty-state row, numbers right-aligned."""

from __future__ import annotations

from collections.abc import Container, Sequence
from typing import Any

from llmlens.web.html import Markup, tag


def table(
    element_id: str,
    headers: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    empty: str = "nothing to show",
    numeric: Container[int] = (),
    row_ids: Sequence[Any] | None = None,
    body_id: str | None = None,
    body_attributes: dict[str, Any] | None = None,
) -> Markup:
    """`<table id=element_id>`; `row_ids` become each row's `data-id`; an empty table says `empty`."""
    head = tag("thead", tag("tr", [tag("th", h, scope="col", class_="num" if i in numeric else None)
                                   for i, h in enumerate(headers)]))  # fmt: skip
    body_rows = [
        row_html(cells, numeric, None if row_ids is None else row_ids[n]) for n, cells in enumerate(rows)
    ]
    if not body_rows:
        body_rows.append(tag("tr", tag("td", empty, colspan=len(headers)), id=f"{element_id}-empty",
                             class_="empty"))  # fmt: skip
    body = tag("tbody", body_rows, id=body_id, **(body_attributes or {}))
    return tag("table", head, body, id=element_id, class_="data")


def row_html(cells: Sequence[Any], numeric: Container[int] = (), row_id: Any = None) -> Markup:
    return tag("tr", [tag("td", c, class_="num" if i in numeric else None) for i, c in enumerate(cells)],
               data_id=row_id)  # fmt: skip
