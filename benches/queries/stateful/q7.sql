-- Nexmark q7-style: the highest bid of each 10-second window.
SELECT window_start, window_end, max(price) AS top_price, count(*) AS bids
FROM TUMBLE(bids, date_time, INTERVAL '10' SECOND)
GROUP BY window_start, window_end
