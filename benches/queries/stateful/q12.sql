-- Nexmark q12-style: bids per bidder per 10-second event-time window.
SELECT bidder, window_start, count(*) AS bids
FROM TUMBLE(bids, date_time, INTERVAL '10' SECOND)
GROUP BY bidder, window_start, window_end
