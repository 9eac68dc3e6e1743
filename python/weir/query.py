"""``StreamingQuery``, its ``Subscription`` feed, and the ``Batch``es the feed gives."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Dict, Iterator, List, Optional

import pyarrow as pa

from . import _internal
from .display import escape, html


@dataclass(frozen=True)
class Batch:
    """The rows one committed micro-batch of a query produced."""

    batch_id: int
    table: pa.Table

    def to_pandas(self) -> Any:
        """The rows as a pandas DataFrame (pandas must be installed)."""
        return self.table.to_pandas()

    def _repr_html_(self) -> str:
        return html(self.table, caption=f"batch {self.batch_id}")


class Subscription:
    """The batches a query commits from the moment of ``subscribe()``, in order.

    Iterating waits for each batch and ends when the query ends; ``next(timeout=...)`` waits
    at most that many seconds (``TimeoutError``). A reader that falls more than 64 batches
    behind misses the oldest; the query never waits for its readers. One thread reads a
    subscription at a time (another gets ``ValueError``); subscribe once per reader.
    """

    def __init__(self, subscription: _internal.Subscription) -> None:
        self._subscription = subscription

    def next(self, timeout: Optional[float] = None) -> Optional[Batch]:
        """The next batch, or None once the query has ended."""
        item = self._subscription.next(timeout)
        return None if item is None else Batch(*item)

    def __iter__(self) -> Iterator[Batch]:
        return self

    def __next__(self) -> Batch:
        batch = self.next()
        if batch is None:
            raise StopIteration
        return batch


class StreamingQuery:
    """A running (or ended) continuous query, as ``Engine.start`` returns it."""

    def __init__(self, query: _internal.StreamingQuery) -> None:
        self._query = query

    @property
    def name(self) -> str:
        """The query's name: its sink's."""
        return self._query.name

    @property
    def sources(self) -> List[str]:
        """The streaming sources it reads."""
        return self._query.sources

    @property
    def state(self) -> str:
        """``running``, ``stopped`` or ``failed``."""
        return self._query.state

    @property
    def is_active(self) -> bool:
        """Whether it is still running."""
        return self._query.is_active

    @property
    def last_error(self) -> Optional[str]:
        """Why it failed, if it did."""
        return self._query.last_error

    @property
    def batches_run(self) -> int:
        """How many batches it has run since it started."""
        return self._query.batches_run

    @property
    def last_plan(self) -> Optional[str]:
        """The last batch's physical plan with each operator's metrics."""
        return self._query.last_plan

    def progress(self) -> Optional[Dict[str, Any]]:
        """The last batch's progress in Spark's ``StreamingQueryProgress`` shape
        (``batchId``, ``numInputRows``, ``durationMs``, ``stateOperators``, ...), or None
        before the first batch."""
        text = self._query.progress_json()
        return None if text is None else json.loads(text)

    def recent_progress(self) -> List[Dict[str, Any]]:
        """Up to the last 100 batches' progress, oldest first."""
        return json.loads(self._query.recent_progress_json())

    def subscribe(self) -> Subscription:
        """A feed of the rows of every batch committed from now on."""
        return Subscription(self._query.subscribe())

    def process_all_available(self) -> None:
        """Runs batches until everything its sources hold now is processed (Spark's
        ``processAllAvailable``). Raises ``WeirError`` if the query fails meanwhile."""
        self._query.process_all_available()

    def stop(self) -> None:
        """Stops it gracefully: the batch in flight finishes and is committed. A query that
        had failed stops quietly (as in Spark): ``await_termination`` and ``last_error``
        report its error."""
        self._query.stop()

    def await_termination(self, timeout: Optional[float] = None) -> bool:
        """Waits (at most ``timeout`` seconds) for it to end; whether it ended. Raises
        ``WeirError`` if it failed."""
        return self._query.await_termination(timeout)

    def __repr__(self) -> str:
        return f"<StreamingQuery {self.name} {self.state}, {self.batches_run} batches>"

    def _repr_html_(self) -> str:
        progress = self.progress() or {}
        cells = [
            ("query", self.name),
            ("state", self.state),
            ("sources", ", ".join(self.sources)),
            ("batches", self.batches_run),
            ("last batch", progress.get("batchId", "")),
            ("input rows", progress.get("numInputRows", "")),
            ("rows/s", progress.get("processedRowsPerSecond", "")),
            ("error", self.last_error or ""),
        ]
        rows = "".join(f"<tr><th>{k}</th><td>{escape(str(v))}</td></tr>" for k, v in cells)
        return f"<table>{rows}</table>"
