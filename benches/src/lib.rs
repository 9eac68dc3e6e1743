//! Benchmarks of Weir. Nothing here is a library: the code lives in `benches/`.
//!
//! - `benches/nexmark.rs`: the end-to-end Nexmark runner. It runs every query in
//!   `queries/*.sql` (one `SELECT` over the `bids` stream per file) from the seeded `nexmark`
//!   generator into the `blackhole` sink, and from pre-generated Parquet files into the
//!   `parquet` sink against plain DataFusion running the same `SELECT` as one batch.
//!   `cargo bench -p weir-benches --bench nexmark [-- q0 q1 ...]`.
//! - `RESULTS.md`: the measured numbers, with the machine and the date.
