WITH marked AS (
  SELECT bidder, date_time,
         CASE WHEN date_time - lag(date_time) OVER (PARTITION BY bidder ORDER BY date_time) < INTERVAL '10' SECOND
              THEN 0 ELSE 1 END AS starts
  FROM bids),
numbered AS (
  SELECT bidder, date_time, sum(starts) OVER (PARTITION BY bidder ORDER BY date_time ROWS UNBOUNDED PRECEDING) AS session
  FROM marked)
SELECT bidder, min(date_time) AS window_start, max(date_time) + INTERVAL '10' SECOND AS window_end, count(*) AS bids
FROM numbered GROUP BY bidder, session
