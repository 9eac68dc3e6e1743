-- Nexmark q0, pass-through: every bid, every column, unchanged.
-- Measures the cost of the engine itself (source, batch loop, sink) with no work per row.
SELECT auction, bidder, price, channel, url, date_time, extra
FROM bids
