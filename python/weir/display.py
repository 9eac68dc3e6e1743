"""Results in notebooks: ``html`` draws a ``pyarrow.Table`` as an HTML table, and in IPython
(Jupyter) every ``pyarrow.Table`` an output cell shows is drawn with it."""

from __future__ import annotations

import html as _html
import sys
from typing import Optional

import pyarrow as pa


def escape(text: str) -> str:
    """``text`` safe inside HTML."""
    return _html.escape(text, quote=True)


def html(table: pa.Table, max_rows: int = 20, caption: Optional[str] = None) -> str:
    """``table`` as an HTML table of its first ``max_rows`` rows, with each column's type
    and the number of rows left out."""
    head = table.slice(0, max_rows)
    columns = head.column_names
    header = "".join(
        f"<th>{escape(name)}<br><small>{escape(str(field.type))}</small></th>"
        for name, field in zip(columns, table.schema)
    )
    body = "".join(
        "<tr>"
        + "".join(f"<td>{escape(_cell(row[name]))}</td>" for name in columns)
        + "</tr>"
        for row in head.to_pylist()
    )
    more = table.num_rows - head.num_rows
    footer = f"<p>{more} more rows</p>" if more > 0 else ""
    title = f"<caption>{escape(caption)}</caption>" if caption else ""
    return f"<table>{title}<tr>{header}</tr>{body}</table>{footer}"


def _cell(value: object) -> str:
    return "NULL" if value is None else str(value)


def _draw_tables_in_ipython() -> None:
    ipython_module = sys.modules.get("IPython")
    if ipython_module is None:
        return
    shell = ipython_module.get_ipython()
    if shell is None:
        return
    shell.display_formatter.formatters["text/html"].for_type(pa.Table, html)


_draw_tables_in_ipython()
