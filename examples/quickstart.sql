-- Weir quickstart: Nexmark bids from the built-in generator, converted to euros (Nexmark q1),
-- filtered (q2-style) and counted per window (q5-style), printed to the console and written
-- exactly once to Parquet.
-- Run it with:  cargo run --release -- run examples/quickstart.sql
-- Output lands in out/quickstart/; run it again and it resumes from its checkpoint (and,
-- the generator being exhausted, has nothing left to do).

CREATE SOURCE bids (
    WATERMARK FOR date_time AS date_time - INTERVAL '5' SECOND
) WITH (
    connector = 'nexmark', table = 'bid',
    max_events = '500000', max_records_per_trigger = '100000'
);

-- Nexmark q1: bids in euros, one Parquet file set per micro-batch.
CREATE SINK bids_in_euros WITH (
    connector = 'parquet', path = 'out/quickstart/bids_in_euros',
    checkpoint = 'out/quickstart/checkpoints/bids_in_euros',
    trigger = 'available-now'
) AS
SELECT auction, bidder, CAST(price * 0.908 AS BIGINT) AS price_eur, channel, date_time
FROM bids;

-- A q2-style filter, printed as it runs.
CREATE SINK big_bids WITH (connector = 'console', max_rows = '5', trigger = 'available-now') AS
SELECT auction, price, upper(channel) AS channel, date_time
FROM bids
WHERE price > 10000000 AND auction % 100 = 0;

-- Nexmark q5-style: bids per auction per 10-second window, each window written once, when
-- the watermark passes its end (flush_on_end closes the last ones when the input ends).
CREATE SINK bids_per_window WITH (
    connector = 'parquet', path = 'out/quickstart/bids_per_window',
    checkpoint = 'out/quickstart/checkpoints/bids_per_window',
    trigger = 'available-now', flush_on_end = 'true'
) AS
SELECT window_start, window_end, auction, count(*) AS bids, max(price) AS top_price
FROM TUMBLE(bids, date_time, INTERVAL '10' SECOND)
GROUP BY window_start, window_end, auction;
