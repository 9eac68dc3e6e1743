WITH CountBids AS (
  SELECT auction, starttime, count(*) AS num
  FROM (SELECT auction, unnest(make_array(
          date_bin(INTERVAL '2' SECOND, date_time, TIMESTAMP '1970-01-01T00:00:00'),
          date_bin(INTERVAL '2' SECOND, date_time, TIMESTAMP '1970-01-01T00:00:00') - INTERVAL '2' SECOND,
          date_bin(INTERVAL '2' SECOND, date_time, TIMESTAMP '1970-01-01T00:00:00') - INTERVAL '4' SECOND,
          date_bin(INTERVAL '2' SECOND, date_time, TIMESTAMP '1970-01-01T00:00:00') - INTERVAL '6' SECOND,
          date_bin(INTERVAL '2' SECOND, date_time, TIMESTAMP '1970-01-01T00:00:00') - INTERVAL '8' SECOND)) AS starttime
        FROM bid)
  GROUP BY auction, starttime)
SELECT AuctionBids.auction, AuctionBids.num
FROM CountBids AS AuctionBids
JOIN (SELECT max(num) AS maxn, starttime FROM CountBids GROUP BY starttime) AS MaxBids
  ON AuctionBids.starttime = MaxBids.starttime AND AuctionBids.num >= MaxBids.maxn
