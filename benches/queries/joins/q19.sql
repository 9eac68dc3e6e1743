-- output_mode: update
-- Nexmark q19 (the ten highest bids of each auction): a Top-N over the whole stream.
SELECT auction, bidder, price, channel, url, date_time, rank_number
FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY auction ORDER BY price DESC) AS rank_number
      FROM bid)
WHERE rank_number <= 10
