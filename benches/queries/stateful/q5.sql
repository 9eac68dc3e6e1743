-- Nexmark q5-style: bids per auction in sliding windows of 10 s every 2 s (hot items
-- without the self-join).
SELECT auction, window_start, window_end, count(*) AS bids
FROM HOP(bids, date_time, INTERVAL '2' SECOND, INTERVAL '10' SECOND)
GROUP BY auction, window_start, window_end
