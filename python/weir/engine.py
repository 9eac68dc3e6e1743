"""``Engine``: the entry point, as ``weir::Engine`` is in Rust."""

from __future__ import annotations

import atexit
from os import PathLike
from typing import Callable, List, Optional, Sequence, Union

import pyarrow as pa

from . import _internal
from ._arrow import Data, TypeLike, as_arrow, as_type
from .display import escape
from .query import StreamingQuery

#: What one statement of ``Engine.execute`` gives: rows, a started query, or what was done.
Outcome = Union[pa.Table, StreamingQuery, str]

_VOLATILITIES = ("immutable", "stable", "volatile")

# Queries run on the engine's own threads, and go on when their Engine object is gone; those
# calling Python UDFs must end before the interpreter does. So every engine that started a
# query is kept here (the query keeps its catalog alive anyway) and stopped at exit.
_engines_with_queries: "set[_internal.Engine]" = set()


@atexit.register
def _stop_everything_at_exit() -> None:
    for engine in list(_engines_with_queries):
        try:
            engine.stop_all()
        except Exception:  # noqa: BLE001 - exiting; a failed query has reported already
            pass


class Engine:
    """A catalog of sources, tables, views and sinks, and the continuous queries over them.

    ``checkpoint_root``: where queries whose sink names no ``checkpoint`` keep theirs.
    ``target_partitions``: DataFusion's parallelism. ``state_partitions``: state partitions
    of a new stateful query. ``memory_limit``: bytes DataFusion's operators may hold; past it
    a batch fails with a resources error.
    """

    def __init__(
        self,
        *,
        checkpoint_root: Optional[Union[str, PathLike]] = None,
        target_partitions: Optional[int] = None,
        state_partitions: Optional[int] = None,
        memory_limit: Optional[int] = None,
    ) -> None:
        self._engine = _internal.Engine(
            checkpoint_root=checkpoint_root,
            target_partitions=target_partitions,
            state_partitions=state_partitions,
            memory_limit=memory_limit,
        )

    def execute(self, sql: str) -> List[Outcome]:
        """Runs every statement of ``sql`` in order, stopping at the first error.

        Returns one result per statement: a ``pyarrow.Table`` for a query, ``SHOW``,
        ``DESCRIBE`` or ``EXPLAIN``; a ``StreamingQuery`` for a statement that started one;
        otherwise the text of what was done. Raises ``WeirError``; what the statements before
        the failing one did stays done (a query they started runs on: ``queries()`` has it).
        """
        _engines_with_queries.add(self._engine)
        return [_wrap(outcome) for outcome in self._engine.execute(sql)]

    def start(self, sql: str) -> StreamingQuery:
        """Runs one ``CREATE SINK ... AS SELECT`` or ``INSERT INTO <sink> SELECT`` and
        returns the continuous query it started."""
        _engines_with_queries.add(self._engine)
        return StreamingQuery(self._engine.start(sql))

    def watch(self, select: str) -> StreamingQuery:
        """Starts ``select`` as a continuous query whose rows go only to its subscribers
        (nothing is written). Stop it when done."""
        _engines_with_queries.add(self._engine)
        return StreamingQuery(self._engine.watch(select))

    def sql(self, sql: str) -> pa.Table:
        """Runs one ad hoc query (or ``SHOW``, ``DESCRIBE``, ``EXPLAIN``) over static tables,
        views, memory sinks and a snapshot of streaming sources: its rows as a
        ``pyarrow.Table`` (``.to_pandas()`` gives a DataFrame)."""
        return self._engine.sql(sql)

    def insert(self, source: str, data: Data) -> int:
        """Appends ``data`` to the ``memory`` source ``source``: a pyarrow Table or
        RecordBatch, a pandas DataFrame, anything with ``__arrow_c_stream__``, a dict of
        columns or a list of row dicts. Columns are matched to the source's by name and cast
        to its types; a value that would change (text that is no number, 1.7 into an INT, an
        overflow) is refused, and then nothing is appended. The rows become visible to
        queries all at once (several chunks are joined into one batch, a copy). Returns the
        number of rows appended."""
        return self._engine.insert(source, as_arrow(data))

    def register_udf(
        self,
        name: str,
        function: Callable[..., object],
        input_types: Sequence[TypeLike],
        return_type: TypeLike,
        volatility: str = "immutable",
    ) -> None:
        """Registers ``function`` as the SQL scalar function ``name``.

        It is called once per batch with one ``pyarrow.Array`` per argument and must return
        one value per row: a ``pyarrow.Array`` (or anything ``pyarrow.array`` takes) of
        ``return_type``. It runs inside continuous queries as in ad hoc ones; an exception
        fails the batch, and the query reports it, with its traceback, in ``last_error``.
        ``volatility`` is ``immutable`` (same arguments, same result: constant arguments make
        one call of one row), ``stable`` or ``volatile`` (called for every row, even of
        constants).
        """
        if not callable(function):
            raise TypeError(f"UDF '{name}': {function!r} is not callable")
        volatility = volatility.lower()
        if volatility not in _VOLATILITIES:
            raise ValueError(f"volatility must be one of {', '.join(_VOLATILITIES)}")
        self._engine.register_udf(
            name,
            function,
            [as_type(t) for t in input_types],
            as_type(return_type),
            volatility,
        )

    def udf(
        self,
        input_types: Sequence[TypeLike],
        return_type: TypeLike,
        *,
        name: Optional[str] = None,
        volatility: str = "immutable",
    ) -> Callable[[Callable[..., object]], Callable[..., object]]:
        """A decorator form of ``register_udf``; the function's own name is the SQL name
        unless ``name`` is given::

            @engine.udf(["double"], "double")
            def fahrenheit(celsius):
                return pyarrow.compute.add(pyarrow.compute.multiply(celsius, 1.8), 32)
        """

        def register(function: Callable[..., object]) -> Callable[..., object]:
            self.register_udf(
                name or function.__name__, function, input_types, return_type, volatility
            )
            return function

        return register

    def query(self, name: str) -> Optional[StreamingQuery]:
        """A running or ended query by name (its sink's name)."""
        query = self._engine.query(name)
        return None if query is None else StreamingQuery(query)

    def queries(self) -> List[StreamingQuery]:
        """Every query this engine started."""
        return [StreamingQuery(q) for q in self._engine.queries()]

    def stop_all(self) -> None:
        """Stops every running query gracefully (a failed one quietly)."""
        self._engine.stop_all()

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop_all()

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><td>{escape(q.name)}</td><td>{escape(q.state)}</td>"
            f"<td>{q.batches_run}</td></tr>"
            for q in self.queries()
        )
        return (
            "<table><caption>Weir engine</caption>"
            "<tr><th>query</th><th>state</th><th>batches</th></tr>"
            f"{rows}</table>"
        )


def _wrap(outcome: object) -> Outcome:
    if isinstance(outcome, _internal.StreamingQuery):
        return StreamingQuery(outcome)
    return outcome  # type: ignore[return-value]
