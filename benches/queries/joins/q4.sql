-- output_mode: update
-- Nexmark q4 (average winning price per category), with each auction's life bounded by its
-- start (20 s, as q20b bounds it) rather than by `expires`, a column without a watermark:
-- each auction's highest bid is final when the join's watermark passes the auction's start
-- (an aggregation keyed by that event time, append), and feeds an average per category over
-- the whole stream (update).
SELECT Q.category, AVG(Q.final) AS avg_final
FROM (SELECT MAX(B.price) AS final, A.category, A.id, A.date_time
      FROM auction AS A JOIN bid AS B ON A.id = B.auction
        AND B.date_time BETWEEN A.date_time AND A.date_time + INTERVAL '20' SECOND
      GROUP BY A.id, A.category, A.date_time) AS Q
GROUP BY Q.category
