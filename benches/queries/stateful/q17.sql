-- Nexmark q17: daily statistics per auction.
SELECT auction, window_start AS day,
       count(*) AS total_bids,
       count(*) FILTER (WHERE price < 10000) AS rank1_bids,
       count(*) FILTER (WHERE price >= 10000 AND price < 1000000) AS rank2_bids,
       count(*) FILTER (WHERE price >= 1000000) AS rank3_bids,
       min(price) AS min_price, max(price) AS max_price,
       avg(price) AS avg_price, sum(price) AS sum_price
FROM TUMBLE(bids, date_time, INTERVAL '1' DAY)
GROUP BY auction, window_start, window_end
