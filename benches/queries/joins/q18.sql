-- output_mode: update
-- Nexmark q18 (last bid of each bidder on each auction): a Top-N of one over the whole
-- stream, newest first.
SELECT auction, bidder, price, channel, url, date_time
FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY bidder, auction ORDER BY date_time DESC) AS rank_number
      FROM bid)
WHERE rank_number <= 1
