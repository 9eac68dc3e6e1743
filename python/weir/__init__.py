"""Weir, a streaming SQL engine on Apache Arrow and DataFusion, embedded in Python::

    import weir

    engine = weir.Engine()
    engine.execute("CREATE SOURCE clicks (user_id INT, url VARCHAR) WITH (connector = 'memory')")
    query = engine.start(
        "CREATE SINK per_user WITH (connector = 'memory', output_mode = 'complete') AS "
        "SELECT user_id, count(*) AS clicks FROM clicks GROUP BY user_id"
    )
    engine.insert("clicks", {"user_id": [1, 2, 1], "url": ["a", "b", "c"]})
    query.process_all_available()
    engine.sql("SELECT * FROM per_user ORDER BY user_id").to_pandas()

Answers are ``pyarrow.Table``s, sharing the engine's buffers rather than copying them; the
engine works with the GIL released, so Python threads (and Python UDFs inside queries) run
meanwhile.
"""

from ._internal import WeirError, __version__
from .display import html
from .engine import Engine, Outcome
from .query import Batch, StreamingQuery, Subscription

__all__ = [
    "Batch",
    "Engine",
    "Outcome",
    "StreamingQuery",
    "Subscription",
    "WeirError",
    "__version__",
    "html",
]
