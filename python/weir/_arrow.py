"""Data from Python as Arrow: what ``Engine.insert`` and UDF declarations accept."""

from __future__ import annotations

from typing import Any, Union

import pyarrow as pa

#: What ``Engine.insert`` takes: a ``pyarrow.Table`` or ``RecordBatch``, anything with
#: ``__arrow_c_stream__`` (polars, DuckDB relations), a pandas ``DataFrame``, a dict of
#: columns, or a list of row dicts.
Data = Any

#: A column type: a ``pyarrow.DataType`` or its name (``"int64"``, ``"double"``, ``"string"``).
TypeLike = Union[pa.DataType, str]


def as_arrow(data: Data) -> Any:
    """``data`` as an object with ``__arrow_c_stream__`` (pandas through pyarrow)."""
    if hasattr(data, "__arrow_c_stream__"):
        return data
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data])
    if isinstance(data, dict):
        return pa.table(data)
    if isinstance(data, list):
        return pa.Table.from_pylist(data)
    if type(data).__module__.startswith("pandas"):
        return pa.Table.from_pandas(data, preserve_index=False)
    raise TypeError(
        f"cannot read rows from a {type(data).__name__}; give a pyarrow Table or RecordBatch, "
        "a pandas DataFrame, a dict of columns or a list of row dicts"
    )


def as_type(value: TypeLike) -> pa.DataType:
    """A ``pyarrow.DataType`` from itself or its name."""
    if isinstance(value, pa.DataType):
        return value
    if isinstance(value, str):
        try:
            return pa.type_for_alias(value)
        except ValueError:
            raise ValueError(
                f"'{value}' is not an Arrow type name; try int64, double, string, bool, "
                "timestamp[ms], or give a pyarrow.DataType"
            ) from None
    raise TypeError(f"{value!r} is not a pyarrow.DataType or a type name")
