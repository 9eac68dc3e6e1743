SELECT bidder, date_bin(INTERVAL '10' SECOND, date_time, TIMESTAMP '1970-01-01T00:00:00') AS window_start,
       count(*) AS bids
FROM bids GROUP BY 1, 2
