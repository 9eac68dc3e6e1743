-- Nexmark q7 (highest bid): the bids at each 10-second window's maximum price, the maximum
-- (an append-mode windowed aggregation) joined back to the bids; the window's end bounds
-- how long bids are kept.
SELECT B.auction, B.price, B.bidder, B.date_time
FROM bid AS B
JOIN (SELECT max(price) AS maxprice, window_end AS date_time
      FROM TUMBLE(bid, date_time, INTERVAL '10' SECOND)
      GROUP BY window_start, window_end) AS B1
  ON B.price = B1.maxprice
WHERE B.date_time BETWEEN B1.date_time - INTERVAL '10' SECOND AND B1.date_time
