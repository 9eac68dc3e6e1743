-- Nexmark q2, selection: bids on a fixed set of auctions.
-- Uses the original Nexmark predicate `auction % 123 = 0`, not the Flink/RisingWave list
-- `auction IN (1007, 1020, 2001, 2019, 2087)`: this generator's auction ids start at 1000 and
-- 99 bids in 100 go to the current "hot" auction, a multiple of 100, so that list would select
-- almost nothing. `% 123` keeps the hot auctions that are multiples of 12 300 plus 1 in 123
-- of the others: about 0.8% of bids.
SELECT auction, price
FROM bids
WHERE auction % 123 = 0
