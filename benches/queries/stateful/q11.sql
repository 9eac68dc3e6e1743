-- Nexmark q11: bids per bidder per session (sessions end after 10 s without a bid).
SELECT bidder, window_start, window_end, count(*) AS bids
FROM SESSION(bids, date_time, INTERVAL '10' SECOND)
GROUP BY bidder, window_start, window_end
