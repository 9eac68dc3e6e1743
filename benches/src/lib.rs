//! Benchmarks of Weir. Nothing here is a library: the code lives in `benches/`.
//!
//! - `benches/nexmark.rs`: the end-to-end Nexmark runner. It runs every query in
//!   `queries/*.sql` (one `SELECT` over the `bids` stream per file) from the seeded `nexmark`
//!   generator into the `blackhole` sink, and from pre-generated Parquet files into the
//!   `parquet` sink against plain DataFusion running the same `SELECT` as one batch.
//!   `cargo bench -p weir-benches --bench nexmark [-- q0 q1 ...]`.
//! - `benches/nexmark_stateful.rs`: windowed aggregations (q5, q7, q11, q12, q15-q17) against
//!   DataFusion running the same aggregation as one batch.
//! - `benches/kafka.rs`: Nexmark bids as JSON in a Kafka topic into the `parquet` sink, local
//!   and on S3 (needs the services of `.ci/services`).
//! - `RESULTS.md`: the measured numbers, with the machine and the date.
