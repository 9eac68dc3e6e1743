-- output_mode: update
-- Nexmark q9 (winning bids): each auction's highest bid within its life (the earliest of
-- equal ones), a Top-N over the whole stream (Flink's form) over a stream-stream join. The
-- bids leave the join's state as the watermark passes them; the auctions, whose bound is
-- their expiry (not their watermarked time), and the rankings stay.
SELECT id, item_name, description, initial_bid, reserve, date_time, expires, seller,
       category, auction, bidder, price, bid_date_time
FROM (SELECT A.*, B.auction, B.bidder, B.price, B.date_time AS bid_date_time,
             ROW_NUMBER() OVER (PARTITION BY A.id ORDER BY B.price DESC, B.date_time ASC) AS rownum
      FROM auction AS A, bid AS B
      WHERE A.id = B.auction AND B.date_time BETWEEN A.date_time AND A.expires)
WHERE rownum <= 1
