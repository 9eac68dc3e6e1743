"""The `weir` Python package, as installed from the wheel `bash .ci/python` builds: the engine
in-process, answers as pyarrow Tables, memory sources fed from pyarrow and pandas, live
subscriptions, Python UDFs inside continuous queries, errors, and notebook display.

Expected rows come from pandas (the oracle) or are spelled out from the input, never from Weir.
"""

import ast
import os
import random
import threading

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest

import weir


@pytest.fixture()
def engine(tmp_path):
    engine = weir.Engine(checkpoint_root=tmp_path, target_partitions=2)
    yield engine
    engine.stop_all()


def clicks(engine):
    engine.execute("CREATE SOURCE clicks (user_id INT, url VARCHAR, ms BIGINT) "
                   "WITH (connector = 'memory')")


def test_execute_answers_each_statement_and_sql_gives_a_pyarrow_table(engine):
    clicks(engine)
    outcomes = engine.execute(
        "CREATE VIEW slow AS SELECT url FROM clicks WHERE ms > 100; "
        "SHOW VIEWS; "
        "CREATE SINK slow_urls WITH (connector = 'memory') AS SELECT url FROM slow")
    assert len(outcomes) == 3
    assert isinstance(outcomes[0], str) and "slow" in outcomes[0]
    assert isinstance(outcomes[1], pa.Table)
    assert outcomes[1].column("name").to_pylist() == ["slow"]
    assert isinstance(outcomes[2], weir.StreamingQuery)
    assert outcomes[2].name == "slow_urls" and outcomes[2].sources == ["clicks"]
    assert [q.name for q in engine.queries()] == ["slow_urls"]
    assert engine.query("slow_urls").state == "running" and engine.query("nope") is None

    table = engine.sql("SELECT 1 AS one, 'x' AS letter")
    assert isinstance(table, pa.Table)
    assert table.to_pylist() == [{"one": 1, "letter": "x"}]
    assert table.to_pandas().to_dict("list") == {"one": [1], "letter": ["x"]}

    # No rows still has the columns, with their types.
    empty = engine.sql("SELECT 1 AS one, 'x' AS letter WHERE 1 = 0")
    assert empty.num_rows == 0
    assert empty.schema.names == ["one", "letter"]
    assert empty.schema.field("one").type == pa.int64()


def test_a_query_over_rows_from_pandas_and_pyarrow_matches_pandas_for_any_split(engine):
    clicks(engine)
    query = engine.start(
        "CREATE SINK per_user WITH (connector = 'memory', output_mode = 'complete') AS "
        "SELECT user_id, count(*) AS n, max(ms) AS last_ms FROM clicks GROUP BY user_id")
    rng = random.Random(26)
    frame = pd.DataFrame({
        "user_id": [rng.randrange(5) for _ in range(300)],
        "url": [f"/p{rng.randrange(9)}" for _ in range(300)],
        "ms": [rng.randrange(10_000) for _ in range(300)],
    })
    # Random batch boundaries, alternating pandas and pyarrow, columns in another order and
    # types (int64 for INT) that the engine casts.
    start = 0
    chunk = 0
    while start < len(frame):
        end = min(len(frame), start + rng.randrange(1, 80))
        part = frame.iloc[start:end][["ms", "url", "user_id"]]
        data = part if chunk % 2 == 0 else pa.Table.from_pandas(part, preserve_index=False)
        assert engine.insert("clicks", data) == end - start
        if rng.random() < 0.5:
            query.process_all_available()
        start, chunk = end, chunk + 1
    query.process_all_available()

    actual = engine.sql("SELECT * FROM per_user ORDER BY user_id").to_pandas()
    expected = (frame.groupby("user_id").agg(n=("url", "size"), last_ms=("ms", "max"))
                .reset_index().sort_values("user_id"))
    assert actual["user_id"].tolist() == expected["user_id"].tolist()
    assert actual["n"].tolist() == expected["n"].tolist()
    assert actual["last_ms"].tolist() == expected["last_ms"].tolist()

    progress = query.progress()
    assert progress["sink"]["description"] == "per_user"
    assert sum(p["numInputRows"] for p in query.recent_progress()) == 300
    assert query.state == "running" and query.is_active and query.last_error is None


def test_insert_takes_dicts_and_row_lists_and_names_what_does_not_fit(engine):
    clicks(engine)
    assert engine.insert("clicks", {"user_id": [1], "url": ["a"], "ms": [5]}) == 1
    assert engine.insert("clicks", [{"user_id": 2, "url": "b", "ms": 6}]) == 1
    assert engine.sql("SELECT user_id, url, ms FROM clicks ORDER BY ms").to_pylist() == [
        {"user_id": 1, "url": "a", "ms": 5}, {"user_id": 2, "url": "b", "ms": 6}]

    with pytest.raises(weir.WeirError, match="'clicks' has a column 'ms' .* the data has: "
                                               "user_id, url"):
        engine.insert("clicks", {"user_id": [1], "url": ["a"]})
    with pytest.raises(weir.WeirError, match="a column 'extra' that 'clicks' does not"):
        engine.insert("clicks", {"user_id": [1], "url": ["a"], "ms": [1], "extra": [0]})
    with pytest.raises(weir.WeirError, match="column 'ms' of the data is Utf8"):
        engine.insert("clicks", {"user_id": [1], "url": ["a"], "ms": ["soon"]})
    with pytest.raises(weir.WeirError, match="no memory source named 'nope'"):
        engine.insert("nope", {"a": [1]})
    with pytest.raises(TypeError, match="cannot read rows from a int"):
        engine.insert("clicks", 7)
    # Nothing of the refused inserts arrived.
    assert engine.sql("SELECT count(*) AS n FROM clicks").to_pylist() == [{"n": 2}]


def test_bad_sql_raises_weir_error_naming_the_problem(engine):
    with pytest.raises(weir.WeirError, match="nope"):
        engine.sql("SELECT * FROM nope")
    with pytest.raises(weir.WeirError, match="does not take CREATE SOURCE; use execute"):
        engine.sql("CREATE SOURCE s (a INT) WITH (connector = 'memory')")
    with pytest.raises(weir.WeirError, match="does not take .*; use execute"):
        engine.start("SELECT 1")
    with pytest.raises(weir.WeirError, match="syntax error: .*found: t at Line: 1, Column: 15"):
        engine.sql("SELECT 1 FORM t")


def test_subscribe_gives_each_committed_batch_then_ends_with_the_query(engine):
    clicks(engine)
    query = engine.watch("SELECT user_id, upper(url) AS url FROM clicks WHERE ms > 10")
    feed = query.subscribe()
    engine.insert("clicks", {"user_id": [1, 2, 3], "url": ["a", "b", "c"], "ms": [5, 20, 30]})
    first = feed.next(timeout=60)
    assert isinstance(first, weir.Batch)
    assert first.table.to_pylist() == [{"user_id": 2, "url": "B"}, {"user_id": 3, "url": "C"}]
    engine.insert("clicks", {"user_id": [4], "url": ["d"], "ms": [1]})
    second = feed.next(timeout=60)
    assert second.batch_id > first.batch_id
    # A batch that kept no rows still has the query's columns.
    assert second.table.num_rows == 0 and second.table.schema.names == ["user_id", "url"]
    assert second.to_pandas().empty

    with pytest.raises(TimeoutError):
        feed.next(timeout=0.2)
    query.stop()
    assert list(feed) == []
    assert query.state == "stopped" and query.await_termination(timeout=1) is True


def test_the_gil_is_released_while_the_engine_waits(engine):
    clicks(engine)
    query = engine.watch("SELECT * FROM clicks")
    feed = query.subscribe()
    counter = [0]
    running = threading.Event()
    done = threading.Event()

    def count():
        running.set()
        while not done.is_set():
            counter[0] += 1

    thread = threading.Thread(target=count)
    thread.start()
    running.wait()
    before = counter[0]
    with pytest.raises(TimeoutError):
        feed.next(timeout=0.5)
    during = counter[0] - before
    done.set()
    thread.join()
    # With the GIL held for the whole wait the other thread could not count at all.
    assert during > 1000, during


def test_a_python_udf_runs_inside_a_continuous_query(engine):
    calls = []

    @engine.udf(["double"], "double")
    def fahrenheit(celsius):
        calls.append(len(celsius))
        return pc.add(pc.multiply(celsius, 1.8), 32)

    def label(city, temperature):
        return [f"{c}:{round(t)}" for c, t in zip(city.to_pylist(), temperature.to_pylist())]

    engine.register_udf("label", label, [pa.string(), pa.float64()], pa.string())

    engine.execute("CREATE SOURCE readings (city VARCHAR, celsius DOUBLE) "
                   "WITH (connector = 'memory')")
    query = engine.start(
        "CREATE SINK warm WITH (connector = 'memory') AS "
        "SELECT city, fahrenheit(celsius) AS f, label(city, fahrenheit(celsius)) AS tag "
        "FROM readings WHERE fahrenheit(celsius) > 50")
    engine.insert("readings", {"city": ["oslo", "rome"], "celsius": [5.0, 25.0]})
    query.process_all_available()
    engine.insert("readings", pd.DataFrame({"city": ["cairo"], "celsius": [35.0]}))
    query.process_all_available()

    assert engine.sql("SELECT city, f, tag FROM warm ORDER BY city").to_pylist() == [
        {"city": "cairo", "f": 95.0, "tag": "cairo:95"},
        {"city": "rome", "f": 77.0, "tag": "rome:77"},
    ]
    assert calls, "the UDF was called"
    # Ad hoc queries take it too, with constants.
    assert engine.sql("SELECT fahrenheit(100.0) AS f").to_pylist() == [{"f": 212.0}]


def test_a_failing_udf_fails_the_query_with_its_name_and_exception(engine):
    def explode(values):
        raise RuntimeError("the sensor is on fire")

    def too_short(values):
        return pa.array([1], pa.int64())

    engine.register_udf("explode", explode, ["int64"], "int64")
    engine.register_udf("too_short", too_short, ["int64"], "int64")
    engine.execute("CREATE SOURCE nums (n BIGINT) WITH (connector = 'memory')")
    query = engine.start("CREATE SINK boom WITH (connector = 'memory') AS "
                         "SELECT explode(n) AS x FROM nums")
    engine.insert("nums", {"n": [1, 2]})
    with pytest.raises(weir.WeirError, match="Python UDF 'explode': RuntimeError: the sensor "
                                               "is on fire"):
        query.await_termination(timeout=60)
    assert query.state == "failed"
    assert "the sensor is on fire" in query.last_error
    assert "in explode" in query.last_error, "the traceback names the function"
    query.stop()  # as in Spark, stopping a failed query does not raise its error again

    with pytest.raises(weir.WeirError, match="'too_short': ValueError: returned 1 values for "
                                               "3 rows"):
        engine.sql("SELECT too_short(column1) FROM (VALUES (1), (2), (3))")
    with pytest.raises(ValueError, match="not an Arrow type name"):
        engine.register_udf("bad", explode, ["integer please"], "int64")
    with pytest.raises(ValueError, match="needs at least one column"):
        engine.register_udf("none", lambda: 1, [], "int64")


def test_results_draw_as_html_in_notebooks(engine):
    table = pa.table({"name": ["<b>bold</b>", None], "n": [1, 2]})
    drawn = weir.html(table, max_rows=1)
    assert "&lt;b&gt;bold&lt;/b&gt;" in drawn and "<b>" not in drawn
    assert "<small>int64</small>" in drawn and "1 more rows" in drawn
    assert "NULL" in weir.html(table.slice(1))

    clicks(engine)
    query = engine.watch("SELECT url FROM clicks")
    feed = query.subscribe()
    engine.insert("clicks", {"user_id": [1], "url": ["/home"], "ms": [1]})
    batch = feed.next(timeout=60)
    assert "<caption>batch " in batch._repr_html_() and "/home" in batch._repr_html_()
    query_html = query._repr_html_()
    assert "running" in query_html and query.name in query_html
    assert query.name in engine._repr_html_()


def test_the_stubs_name_what_the_extension_has():
    stubs = ast.parse(open(os.path.join(os.path.dirname(weir.__file__), "_internal.pyi")).read())
    for node in stubs.body:
        if isinstance(node, ast.ClassDef):
            runtime = getattr(weir._internal, node.name)
            for item in node.body:
                if isinstance(item, ast.FunctionDef):
                    assert hasattr(runtime, item.name), f"{node.name}.{item.name}"
    assert os.path.exists(os.path.join(os.path.dirname(weir.__file__), "py.typed"))


def test_the_readme_example_runs_and_shows_what_it_says():
    readme = open(os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__)))), "README.md")).read()
    section = readme.split("\n## Python\n", 1)[1]
    example = section.split("```python\n", 1)[1].split("```", 1)[0]
    scope = {}
    exec(compile(example, "README.md", "exec"), scope)
    assert scope["batch"].table.to_pylist() == [{"city": "rome", "f": 77.0}]
    assert scope["engine"].sql("SELECT * FROM warm").to_pylist() == [{"city": "rome", "f": 77.0}]
    assert scope["query"].state == "stopped"


def test_values_that_would_change_are_refused_not_rounded(engine):
    clicks(engine)
    with pytest.raises(weir.WeirError, match="column 'user_id' of the data is Float64.*lose "
                                               "digits as Int32"):
        engine.insert("clicks", {"user_id": [1.0, 1.7], "url": ["a", "b"], "ms": [1, 2]})
    with pytest.raises(weir.WeirError, match="does not cast to Int32"):
        engine.insert("clicks", {"user_id": [2**40], "url": ["a"], "ms": [1]})
    # Whole floats convert, and a name that differs only in case matches.
    assert engine.insert("clicks", {"USER_ID": [3.0], "url": ["c"], "ms": [3]}) == 1
    assert engine.sql("SELECT user_id FROM clicks").to_pylist() == [{"user_id": 3}]

    def halves(values):
        return pc.divide(pc.cast(values, pa.float64()), 2.0)

    engine.register_udf("halves", halves, ["int64"], "int64")
    with pytest.raises(weir.WeirError, match="'halves': TypeError: returned Float64 where Int64 "
                                               "was declared.*lose digits"):
        engine.sql("SELECT halves(column1) FROM (VALUES (1), (2))")
    assert engine.sql("SELECT halves(column1) AS h FROM (VALUES (2), (4))").to_pylist() == [
        {"h": 1}, {"h": 2}]


def test_a_volatile_udf_of_constants_is_called_for_every_row(engine):
    def positions(values):
        return pa.array(range(len(values)), pa.int64())

    engine.register_udf("pos_volatile", positions, ["int64"], "int64", volatility="VOLATILE")
    engine.register_udf("pos_immutable", positions, ["int64"], "int64")
    rows = engine.sql("SELECT pos_volatile(1) AS v, pos_immutable(1) AS i "
                      "FROM (VALUES (10), (20), (30))").to_pylist()
    assert rows == [{"v": 0, "i": 0}, {"v": 1, "i": 0}, {"v": 2, "i": 0}]


def test_timeouts_beyond_any_clock_mean_no_timeout(engine):
    clicks(engine)
    query = engine.watch("SELECT url FROM clicks")
    feed = query.subscribe()
    query.stop()
    assert feed.next(timeout=1.8e19) is None
    assert query.await_termination(timeout=1.8e19) is True
    with pytest.raises(ValueError, match="not a number of seconds"):
        query.await_termination(timeout=-1)


def test_queries_whose_engine_is_gone_are_stopped_before_the_interpreter_ends(tmp_path):
    script = """
import gc, time, pyarrow as pa, weir
engine = weir.Engine()
engine.register_udf("slow", lambda v: (time.sleep(0.01), v)[1], ["int64"], "int64")
engine.execute("CREATE SOURCE bids WITH (connector = 'nexmark', table = 'bid', "
               "events_per_second = '2000')")
query = engine.start("CREATE SINK s WITH (connector = 'blackhole', trigger = '10 milliseconds') "
                     "AS SELECT slow(price) FROM bids")
while query.batches_run < 3:
    time.sleep(0.01)
del engine, query
gc.collect()
time.sleep(0.2)
print("leaving", flush=True)
"""
    import subprocess
    import sys
    finished = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                              timeout=120, cwd=tmp_path)
    assert finished.returncode == 0, finished.stderr
    assert finished.stdout == "leaving\n"
    assert "panicked" not in finished.stderr and "Fatal" not in finished.stderr, finished.stderr
