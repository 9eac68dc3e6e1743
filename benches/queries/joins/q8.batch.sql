SELECT P.id, P.name, P.starttime
FROM (SELECT id, name, date_bin(INTERVAL '10' SECOND, date_time, TIMESTAMP '1970-01-01T00:00:00') AS starttime
      FROM person GROUP BY 1, 2, 3) AS P
JOIN (SELECT seller, date_bin(INTERVAL '10' SECOND, date_time, TIMESTAMP '1970-01-01T00:00:00') AS starttime
      FROM auction GROUP BY 1, 2) AS A
  ON P.id = A.seller AND P.starttime = A.starttime
