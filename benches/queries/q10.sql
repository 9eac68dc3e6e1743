-- Nexmark q10 (log to file system): every bid with its day and minute as text, the columns
-- Nexmark partitions its files by. The projection only; writing it partitioned by day is the
-- sink's part.
SELECT auction, bidder, price, date_time, extra,
       to_char(date_time, '%Y-%m-%d') AS dt,
       to_char(date_time, '%H:%M') AS hm
FROM bids
