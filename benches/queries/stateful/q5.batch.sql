SELECT auction, window_start, count(*) AS bids
FROM (SELECT auction, unnest(make_array(
        date_bin(INTERVAL '2' SECOND, date_time, TIMESTAMP '1970-01-01T00:00:00'),
        date_bin(INTERVAL '2' SECOND, date_time, TIMESTAMP '1970-01-01T00:00:00') - INTERVAL '2' SECOND,
        date_bin(INTERVAL '2' SECOND, date_time, TIMESTAMP '1970-01-01T00:00:00') - INTERVAL '4' SECOND,
        date_bin(INTERVAL '2' SECOND, date_time, TIMESTAMP '1970-01-01T00:00:00') - INTERVAL '6' SECOND,
        date_bin(INTERVAL '2' SECOND, date_time, TIMESTAMP '1970-01-01T00:00:00') - INTERVAL '8' SECOND)) AS window_start
      FROM bids)
GROUP BY auction, window_start
