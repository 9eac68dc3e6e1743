"""Weir's Flight SQL endpoint as analytics tools reach it: the ADBC Flight SQL driver through
its DB-API (every statement a prepared statement), and pyarrow's raw Flight client.
"""

import time

import pyarrow as pa
import pyarrow.flight as flight
import pytest

from conftest import TOKEN, connect, run


def test_adbc_lists_tables_reads_a_sink_and_starts_a_query(server):
    with connect(server) as conn, conn.cursor() as cur:
        assert run(cur, "CREATE SOURCE clicks (user_id INT, url VARCHAR) "
                        "WITH (connector = 'memory')").to_pylist() == [
            {"result": "created source clicks"}]
        assert run(cur, "INSERT INTO clicks VALUES (1, 'a'), (2, 'b'), (1, 'c')").to_pylist() == [
            {"result": "inserted 3 rows into clicks"}]
        started = run(cur, "CREATE SINK by_user WITH (connector = 'memory', "
                           "trigger = 'available-now') AS SELECT user_id, url FROM clicks")
        assert started.to_pylist() == [{"result": "started query by_user"}]

        # The sink read back as an Arrow table, with a bound parameter.
        deadline = time.time() + 30
        while True:
            table = run(cur, "SELECT url FROM by_user WHERE user_id = $1 ORDER BY url", (1,))
            if table.num_rows == 2 or time.time() > deadline:
                break
            time.sleep(0.1)
        assert table.column("url").to_pylist() == ["a", "c"]

        # The catalog as BI tools list it.
        objects = conn.adbc_get_objects(depth="tables").read_all().to_pylist()
        assert [c["catalog_name"] for c in objects] == ["weir"]
        schemas = objects[0]["catalog_db_schemas"]
        assert [s["db_schema_name"] for s in schemas] == ["public"]
        tables = {t["table_name"]: t["table_type"] for t in schemas[0]["db_schema_tables"]}
        assert tables == {"clicks": "SOURCE", "by_user": "SINK"}
        schema = conn.adbc_get_table_schema("clicks")
        assert schema.names == ["user_id", "url"]
        assert schema.field("user_id").type == pa.int32()

        # A bad statement: the server's message.
        with pytest.raises(Exception, match="syntax error"):
            cur.execute("SELEC 1")


def test_adbc_without_the_token_is_refused(server):
    with pytest.raises(Exception, match="this server needs a token"):
        with connect(server, token=None) as conn, conn.cursor() as cur:
            cur.execute("SHOW SOURCES")


def packed(field, payload):
    """A length-delimited protobuf field."""
    size, varint = len(payload), b""
    while True:
        byte, size = size & 0x7F, size >> 7
        varint += bytes([byte | (0x80 if size else 0)])
        if not size:
            break
    return bytes([field << 3 | 2]) + varint + payload


def test_pyarrow_flight_runs_a_flight_sql_statement(server):
    command = packed(1, b"type.googleapis.com/arrow.flight.protocol.sql.CommandStatementQuery")
    command += packed(2, packed(1, b"SHOW SOURCES"))
    options = flight.FlightCallOptions(headers=[(b"authorization", f"Bearer {TOKEN}".encode())])
    client = flight.connect(f"grpc://{server}")
    info = client.get_flight_info(flight.FlightDescriptor.for_command(command), options)
    table = client.do_get(info.endpoints[0].ticket, options).read_all()
    assert table.column_names == ["name", "connector", "watermark"]
    assert table.num_rows == 0
