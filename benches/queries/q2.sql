-- Nexmark q2, selection: bids on a fixed set of auctions.
-- Uses the original Nexmark predicate `auction % 123 = 0`, not the Flink/RisingWave list
-- `auction IN (1007, 1020, 2001, 2019, 2087)`: this generator's auction ids start at 1000 and
-- half the bids go to the current "hot" auction, a multiple of 100, so that list would select
-- almost nothing over a long run. `% 123` keeps about 0.8% of bids (152 193 of 18.4 M).
SELECT auction, price
FROM bids
WHERE auction % 123 = 0
