-- Nexmark q8 (monitor new users): people who opened an auction in the 10-second window they
-- registered in; a window join, each side's rows leaving state when the window closes.
SELECT P.id, P.name, P.starttime
FROM (SELECT id, name, window_start AS starttime, window_end AS endtime
      FROM TUMBLE(person, date_time, INTERVAL '10' SECOND)
      GROUP BY id, name, window_start, window_end) AS P
JOIN (SELECT seller, window_start AS starttime, window_end AS endtime
      FROM TUMBLE(auction, date_time, INTERVAL '10' SECOND)
      GROUP BY seller, window_start, window_end) AS A
  ON P.id = A.seller AND P.starttime = A.starttime AND P.endtime = A.endtime
