-- Nexmark q14 (calculation): bids priced in euros within a range, labelled by the time of
-- day, with the number of 'c's in `extra` (Nexmark's `count_char` UDF, written with built-in
-- string functions). This generator's prices go up to 1 000 000 cents, Flink's to 100 000 000,
-- so the price range is Flink's divided by 100 (the same share of bids).
SELECT auction, bidder, 0.908 * price AS price,
       CASE
           WHEN extract(hour FROM date_time) >= 8 AND extract(hour FROM date_time) <= 18 THEN 'dayTime'
           WHEN extract(hour FROM date_time) <= 6 OR extract(hour FROM date_time) >= 20 THEN 'nightTime'
           ELSE 'otherTime'
       END AS bid_time_type,
       date_time, extra,
       character_length(extra) - character_length(replace(extra, 'c', '')) AS c_counts
FROM bids
WHERE 0.908 * price > 10000 AND 0.908 * price < 500000
