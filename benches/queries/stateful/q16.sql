-- Nexmark q16: daily statistics per channel, with distinct counts split by price rank.
SELECT channel, window_start AS day,
       count(*) AS total_bids,
       count(*) FILTER (WHERE price < 10000) AS rank1_bids,
       count(*) FILTER (WHERE price >= 10000 AND price < 1000000) AS rank2_bids,
       count(*) FILTER (WHERE price >= 1000000) AS rank3_bids,
       count(DISTINCT bidder) AS total_bidders,
       count(DISTINCT bidder) FILTER (WHERE price < 10000) AS rank1_bidders,
       count(DISTINCT auction) AS total_auctions
FROM TUMBLE(bids, date_time, INTERVAL '1' DAY)
GROUP BY channel, window_start, window_end
