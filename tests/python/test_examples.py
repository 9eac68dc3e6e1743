"""The Python examples in examples/python, run as a user runs them.

The live plot's counts are derived from the Nexmark rule, not from Weir: each second of event
time holds `event_time_rate` events, 46 in every 50 of them bids.
"""

import os
import subprocess
import sys

from conftest import REPO, TOKEN, connect, run

EXAMPLES = os.path.join(REPO, "examples", "python")


def test_the_live_plot_example_draws_every_second_of_bids(tmp_path):
    out = tmp_path / "bids.png"
    finished = subprocess.run(
        [sys.executable, os.path.join(EXAMPLES, "live_plot.py"), "--out", str(out),
         "--events", "50000"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
        env={**os.environ, "MPLBACKEND": "Agg"})
    assert finished.returncode == 0, finished.stderr
    lines = finished.stdout.splitlines()
    batches = [line for line in lines if line.startswith("batch ")]
    assert len(batches) >= 2, "the chart was redrawn as batches came"
    windows = [line for line in lines if line.startswith("2024-")]
    # 50,000 events at 10,000 a second of event time: five whole seconds of 9,200 bids each.
    assert windows == [f"2024-01-01T00:00:0{s} 9200" for s in range(5)]
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_flight_sql_tables_example_lists_the_catalog_and_previews_rows(server):
    with connect(server) as conn, conn.cursor() as cur:
        run(cur, "CREATE SOURCE bids WITH (connector = 'nexmark', table = 'bid', "
                 "max_events = '100')")
        run(cur, "CREATE VIEW big_bids AS SELECT auction, price FROM bids WHERE price > 1000")
        run(cur, "CREATE SOURCE clicks (user_id INT, url VARCHAR) WITH (connector = 'memory')")
        run(cur, "INSERT INTO clicks VALUES (1, '/a'), (2, '/b')")
    finished = subprocess.run(
        [sys.executable, os.path.join(EXAMPLES, "flight_sql_tables.py"), f"grpc://{server}",
         "--token", TOKEN, "--preview", "2"],
        capture_output=True, text=True, timeout=120)
    assert finished.returncode == 0, finished.stderr
    out = finished.stdout
    assert out.startswith("catalog weir\n  schema public\n")
    assert "    source clicks\n      user_id: int32\n      url: string_view\n" in out
    assert "    view big_bids\n      auction: int64\n      price: int64\n" in out
    assert "    source bids\n      auction: int64\n" in out
    assert "clicks: 2 rows shown\n  {'user_id': 1, 'url': '/a'}\n  {'user_id': 2, 'url': '/b'}" \
        in out
    assert "big_bids: 2 rows shown" in out
