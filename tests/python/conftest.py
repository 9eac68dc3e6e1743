"""What the Python tests share: the `weir serve` fixture with Flight SQL on a free port, and
an ADBC connection to it.

Run from the repository root after `bash .ci/python` (or `cargo build --bin weir` and an
installed wheel): `pytest tests/python`. `WEIR_BIN` overrides the binary (default
target/debug/weir).
"""

import os
import re
import subprocess
import tempfile
import time

import adbc_driver_flightsql.dbapi as flight_sql
import pytest
from adbc_driver_flightsql import DatabaseOptions

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WEIR_BIN = os.path.join(REPO, os.environ.get("WEIR_BIN", "target/debug/weir"))
TOKEN = "a-long-enough-python-token-7"


@pytest.fixture()
def server():
    """`weir serve` with Flight SQL and a token on free loopback ports; its Flight address."""
    checkpoints = tempfile.mkdtemp()
    process = subprocess.Popen(
        [WEIR_BIN, "serve", "--listen", "127.0.0.1:0", "--flight-sql", "127.0.0.1:0",
         "--checkpoint-root", checkpoints, "--token", TOKEN],
        stderr=subprocess.PIPE, text=True, env={**os.environ, "NO_COLOR": "1"})
    address = None
    deadline = time.time() + 60
    for line in process.stderr:
        found = re.search(r"Flight SQL listening address=(\S+)", line)
        if found:
            address = found.group(1)
            break
        assert time.time() < deadline, "weir serve did not log its Flight SQL address"
    assert address, "weir serve ended before listening"
    yield address
    process.kill()
    process.wait()


def connect(address, token=TOKEN):
    kwargs = {DatabaseOptions.AUTHORIZATION_HEADER.value: f"Bearer {token}"} if token else {}
    return flight_sql.connect(f"grpc://{address}", db_kwargs=kwargs, autocommit=True)


def run(cursor, sql, parameters=None):
    cursor.execute(sql, parameters)
    return cursor.fetch_arrow_table()
