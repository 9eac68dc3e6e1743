SELECT B.auction, B.price, B.bidder, B.date_time
FROM bid AS B
JOIN (SELECT max(price) AS maxprice,
             date_bin(INTERVAL '10' SECOND, date_time, TIMESTAMP '1970-01-01T00:00:00') + INTERVAL '10' SECOND AS date_time
      FROM bid GROUP BY 2) AS B1
  ON B.price = B1.maxprice
WHERE B.date_time BETWEEN B1.date_time - INTERVAL '10' SECOND AND B1.date_time
