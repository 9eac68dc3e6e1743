//! The `kafka` connector: [`KafkaSource`] reads one topic and [`KafkaSink`] writes one, each
//! exactly once, through librdkafka (the `rdkafka` crate).
//!
//! # Source
//! ```sql
//! CREATE SOURCE orders (id BIGINT, amount DOUBLE, _key VARCHAR, _timestamp TIMESTAMP)
//! WITH (connector = 'kafka', brokers = 'localhost:9092', topic = 'orders', format = 'json',
//!       starting_offsets = 'earliest', max_records_per_trigger = '100000');
//! ```
//! - **Offsets live in Weir's checkpoint**, not in a consumer group: a batch's offset is
//!   `{"topic": "orders", "partitions": {"0": 17, "1": 4}}`, the next Kafka offset to read in
//!   each partition, written to the offsets log before the batch reads. The source assigns
//!   partitions explicitly (it never subscribes, joins a group or commits offsets), so a
//!   restart re-reads exactly the batch that was not committed.
//! - `starting_offsets` (`latest` by default, or `earliest`) applies to the first batch of a
//!   new query only; the offsets it picks are written to the source's checkpoint directory so a
//!   re-run of that batch reads the same records. A partition that appears later (the topic
//!   grew) is read from its earliest offset, as Spark does.
//! - Only committed records are read (`isolation.level = read_committed`): records of open or
//!   aborted transactions never reach a query.
//! - `max_records_per_trigger` bounds a batch; the limit is shared fairly across partitions
//!   (each gets an equal share, and what a nearly idle partition leaves goes to busy ones).
//! - Records are decoded by `format`: `json` (one object per record), `csv` (one line per
//!   record, no header) or `raw` (the value itself fills the one value column, `VARCHAR` or
//!   `BYTEA`). A record must give exactly one row. One that does not (malformed, a tombstone
//!   for json/csv, two objects, a key that is not UTF-8 for a `VARCHAR` `_key`) goes to the
//!   `on_error` policy as `topic/partition@offset`.
//! - Declared columns with these names are filled from the record instead of its value:
//!
//!   | column       | type                 | holds                                      |
//!   |--------------|----------------------|--------------------------------------------|
//!   | `_topic`     | `VARCHAR`            | the topic                                  |
//!   | `_partition` | `INT`                | the partition                              |
//!   | `_offset`    | `BIGINT`             | the record's offset                        |
//!   | `_timestamp` | `TIMESTAMP`          | the record's timestamp (ms; null if none)  |
//!   | `_key`       | `VARCHAR` or `BYTEA` | the record's key (null if none)            |
//! - Records deleted by retention before they were read stop the query with an error naming
//!   the partition and offsets (`fail_on_data_loss = 'false'` skips them with a warning).
//! - Brokers that do not answer: each metadata or offset request has a `timeout` and is tried
//!   3 times with backoff, then fails with an error naming the brokers and the topic. An
//!   unknown topic is an error naming it (Weir never creates topics).
//!
//! # Sink
//! ```sql
//! CREATE SINK totals WITH (connector = 'kafka', brokers = 'localhost:9092', topic = 'totals',
//!     format = 'json', key = 'customer', output_mode = 'update') AS
//! SELECT customer, sum(amount) AS total FROM orders GROUP BY customer;
//! ```
//! One record per output row: `json` writes the row as an object with every column (nulls as
//! `null`); `raw` writes the one column that is not the key as the value. `key = '<column>'`
//! makes that column (as text, or bytes for `BYTEA`) the record key; keyed records go to the
//! partition Kafka's Java clients would pick (murmur2 of the key), others round-robin.
//! Output modes: `append`; `update` and `complete` only with a `key` (each row is then an
//! upsert of its key, which a compacted topic keeps the latest of); without a key they are
//! refused when the query starts. The topic must exist (Weir does not create it).
//!
//! Every record carries headers naming its place: `weir.query` (the sink's name),
//! `weir.batch` (the batch id), `weir.seq` (its position among the batch's records in its
//! partition), `weir.count` (the batch's records in that partition), `weir.total` (the
//! batch's records in all partitions) and `weir.partitions` (the partition count the batch
//! was placed with). A batch's records are written in a canonical order (sorted by key and
//! value) and placed deterministically, so a re-run of the batch numbers and places them as
//! the interrupted attempt did.
//!
//! # Exactly once, per mode
//! When a query restarts, the sink reads each partition's tail back (`read_committed`) to find
//! the newest records of the query. If they hold all of the batch after the last committed one
//! (a crash between the Kafka write and Weir's commit log entry), that batch is not written
//! again; if they hold part of it, the re-run writes only the records after the last one
//! found in each partition.
//! - **Transactions** (`transactions = 'auto'`, the default, on a broker that has them; or
//!   `'true'`): each batch is one Kafka transaction with the transactional id
//!   `weir-<sink name>-<topic>`, stable across restarts of the query. Opening the sink fences
//!   an older instance of the query and aborts its open transaction. Guarantee, on a broker
//!   that hides aborted records from `read_committed` consumers (Apache Kafka, Redpanda): such
//!   a consumer sees every batch's records exactly once and never part of a batch; this does
//!   not depend on the query being deterministic. (A `read_uncommitted` consumer may also see
//!   records of aborted attempts.) On a broker that shows aborted records anyway (tansu 0.6),
//!   the guarantee is the one of the idempotent mode below.
//! - **Idempotent producer** (`transactions = 'false'`, or `'auto'` on a broker whose
//!   `init_transactions` fails as unsupported, with a warning): guarantee: every row lands
//!   exactly once, provided the query gives the same rows when a batch is re-run (true for
//!   deterministic queries, not for ones reading the processing time); but a batch becomes
//!   visible record by record, so a reader can see part of a batch, and after a crash a
//!   partial batch stays visible until the restarted query completes it.
//! - The read-back scans backwards from each partition's end until it finds a record of the
//!   query, so it is fast when the query wrote recently and reads more of a partition the query
//!   has not written to for long; it also reads past the end the broker reports until nothing
//!   more arrives (300 ms), because some brokers report it short. A sink name (`weir.query`)
//!   must be used by one query per topic.
//!
//! # Known broker quirks (tansu 0.6)
//! - Its `ListOffsets` answers the first offset of a partition's last written batch plus one,
//!   so the last records of a multi-record batch stay invisible to the source until the next
//!   write to that partition (nothing is lost or read twice; it is late).
//! - It delivers records of aborted transactions to `read_committed` consumers.

mod client;
mod decode;
mod encode;
mod logs;
mod offsets;
mod sink;
mod source;
mod tail;

#[cfg(test)]
mod mock_tests;

pub use sink::KafkaSink;
pub use source::KafkaSource;

use crate::options::OptionSpec;

/// Options of the `kafka` source (besides `on_error` and `dead_letter_path`).
pub const KAFKA_SOURCE_OPTIONS: &[OptionSpec] = &[
    OptionSpec {
        key: "brokers",
        help: "bootstrap brokers, 'host:port[,host:port...]'; required",
    },
    OptionSpec {
        key: "topic",
        help: "the topic to read; required",
    },
    OptionSpec {
        key: "format",
        help: "json (an object per record), csv (a line per record) or raw (the value in the one value column); required",
    },
    OptionSpec {
        key: "delimiter",
        help: "csv: the one-character field delimiter (default ',')",
    },
    OptionSpec {
        key: "starting_offsets",
        help: "where a new query starts: latest (default) or earliest",
    },
    OptionSpec {
        key: "max_records_per_trigger",
        help: "at most this many records per batch, shared fairly across partitions (default: all)",
    },
    OptionSpec {
        key: "fail_on_data_loss",
        help: "fail (true, default) or skip with a warning (false) when records were deleted before being read",
    },
    OptionSpec {
        key: "poll_timeout",
        help: "how long reading a batch may go without progress before failing (default 2 minutes)",
    },
    OptionSpec {
        key: "timeout",
        help: "timeout of each metadata or offset request, tried 3 times (default 10 seconds)",
    },
];

/// Options of the `kafka` sink.
pub const KAFKA_SINK_OPTIONS: &[OptionSpec] = &[
    OptionSpec {
        key: "brokers",
        help: "bootstrap brokers, 'host:port[,host:port...]'; required",
    },
    OptionSpec {
        key: "topic",
        help: "the topic to write (it must exist); required",
    },
    OptionSpec {
        key: "format",
        help: "json (a row as an object) or raw (the one column besides the key); required",
    },
    OptionSpec {
        key: "key",
        help: "the column whose value is the record key (default: no key); required for update and complete modes",
    },
    OptionSpec {
        key: "transactions",
        help: "auto (default: transactions if the broker has them), true, or false (idempotent producer)",
    },
    OptionSpec {
        key: "timeout",
        help: "timeout of each metadata request and of starting transactions (default 10 seconds)",
    },
];
