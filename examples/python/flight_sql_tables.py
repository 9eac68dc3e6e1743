"""What a BI tool or SQL client shows when it connects to Weir over Arrow Flight SQL: the
catalog tree (catalog, schema, tables with their types and columns) and a preview of each
table's rows, through the ADBC Flight SQL driver (`pip install adbc-driver-flightsql pyarrow`).

Start a server first, for example:

    weir serve --flight-sql 127.0.0.1:50051 --token "$WEIR_TOKEN"
    python examples/python/flight_sql_tables.py grpc://127.0.0.1:50051 --token "$WEIR_TOKEN"
"""

import argparse
import os

import adbc_driver_flightsql.dbapi as flight_sql
from adbc_driver_flightsql import DatabaseOptions

arguments = argparse.ArgumentParser(description=__doc__.splitlines()[0])
arguments.add_argument("uri", help="grpc://host:port, or grpc+tls://host:port")
arguments.add_argument("--token", default=os.environ.get("WEIR_TOKEN"), help="bearer token")
arguments.add_argument("--preview", type=int, default=3, help="rows to show of each table")
options = arguments.parse_args()

headers = {DatabaseOptions.AUTHORIZATION_HEADER.value: f"Bearer {options.token}"}
with flight_sql.connect(options.uri, db_kwargs=headers if options.token else {},
                        autocommit=True) as connection:
    # The tree a BI tool's navigator draws: GetCatalogs, GetDbSchemas, GetTables with schemas.
    objects = connection.adbc_get_objects(depth="all").read_all().to_pylist()
    tables = []
    for catalog in objects:
        print(f"catalog {catalog['catalog_name']}")
        for schema in catalog["catalog_db_schemas"]:
            print(f"  schema {schema['db_schema_name']}")
            for table in schema["db_schema_tables"]:
                name, kind = table["table_name"], table["table_type"]
                print(f"    {kind.lower()} {name}")
                arrow_schema = connection.adbc_get_table_schema(
                    name, catalog_filter=catalog["catalog_name"],
                    db_schema_filter=schema["db_schema_name"])
                for field in arrow_schema:
                    print(f"      {field.name}: {field.type}")
                tables.append(name)

    # A preview of each, as a query a client sends when a table is opened.
    with connection.cursor() as cursor:
        for name in tables:
            cursor.execute(f"SELECT * FROM {name} LIMIT {options.preview}")
            preview = cursor.fetch_arrow_table()
            print(f"{name}: {preview.num_rows} rows shown")
            for row in preview.to_pylist():
                print(f"  {row}")
